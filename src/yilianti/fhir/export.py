"""Bulk data export (FHIR Bulk Data Access: `$export` of the system, of all patients or of a Group's members:
fhir/groups.py) for system clients.

The kick-off (`Prefer: respond-async`) records the request — the client's account, institution and scopes — and
queues an outbox message; the job (fhir/tasks.py, on the procrastinate queue under `yilianti worker`) reads each
patient the institution may see through Patient/$everything, so under the same policy, consent and audit as a
direct request (asking only for the export's types: nothing else is read or audited), and streams each resource to
one ndjson file per type under var_dir/fhir-export/<id>/ as it goes (the ids written are remembered, not the
resources). The status URL answers 202 with X-Progress — the patients done and the resources written so far, from
the job's progress file — until the files are there, then the manifest with an Expires header; the files are
fetched with the same token and removed `fhir_export_hours` after the export finished (periodic job
fhir.expire_exports; the status URL then answers 404); DELETE cancels the export or removes its files at once.
Only the client that asked sees any of it (404 otherwise).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import clients
from yilianti.auth import service as auth
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import AppError, Forbidden, NotFound
from yilianti.fhir import groups, repository
from yilianti.fhir.service import RECORD_TYPES, REVINCLUDES, everything
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.auth import User
from yilianti.models.bulk import BulkExport
from yilianti.worker import outbox

TOPIC = "fhir.export"
NDJSON = "application/fhir+ndjson"
FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
# what an export holds: each patient and what $everything gives about them
TYPES = ("Patient", *sorted({r.split(":")[0] for r in REVINCLUDES["Patient"]} | set(RECORD_TYPES)))


class ExportRefused(AppError):
    status, code, default_message = 400, "export_refused", "批量导出请求无效"


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ExportRefused(fields={"_since": "须为带时区的时间（如 2026-12-01T00:00:00+08:00）"}) from None
    if at.tzinfo is None:
        raise ExportRefused(fields={"_since": "须为带时区的时间（如 2026-12-01T00:00:00+08:00）"})
    return at


def _types(value: str | None, subject: Subject) -> list[str]:
    asked = [t.strip() for t in value.split(",") if t.strip()] if value else []
    unknown = [t for t in asked if t not in TYPES]
    if unknown:
        raise ExportRefused(fields={"_type": "不支持导出该资源类型"})
    readable = [t for t in (asked or TYPES) if clients.permits(subject.scopes, t, "read")]
    if asked and len(readable) < len(asked) or not readable:
        raise Forbidden("访问令牌的权限范围不包括所请求的资源类型", code="insufficient_scope")
    return readable


def kick_off(db: Session, subject: Subject, level: str, *, prefer: str | None, types: str | None,
             since: str | None, output_format: str | None, request_url: str, group_id: str | None = None
             ) -> BulkExport:
    if subject.scopes is None:
        raise Forbidden("批量导出仅限系统客户端（OAuth2 客户端凭证）")
    if group_id is not None:
        groups.find(db, subject, group_id)  # 404 unless the group is the client's institution's
    if not prefer or "respond-async" not in prefer:
        raise ExportRefused(fields={"Prefer": "须为 respond-async"})
    if output_format and output_format not in FORMATS:
        raise ExportRefused(fields={"_outputFormat": "仅支持 application/fhir+ndjson"})
    assert subject.acting_institution_id is not None
    row = BulkExport(user_id=subject.user_id, institution_id=subject.acting_institution_id,
                     scope=" ".join(sorted(subject.scopes)), level=level, group_id=group_id,
                     types=",".join(_types(types, subject)),
                     since=_since(since), request_url=request_url[:2000], status="queued")
    db.add(row)
    db.flush()
    outbox.enqueue(db, TOPIC, {"export_id": row.id})
    audit.record(db, subject, "export", "bulk_export", row.id,
                 detail={"level": level, "types": row.types, "since": since, "group": group_id})
    return row


def folder(export_id: int) -> Path:
    return get_settings().var_dir / "fhir-export" / str(export_id)


def _updated_since(resource: dict[str, Any], since: datetime | None) -> bool:
    updated = resource.get("meta", {}).get("lastUpdated")
    if since is None or not updated:
        return True  # no time to compare: kept (it may have changed)
    return datetime.fromisoformat(updated.replace("Z", "+00:00")) >= since


PROGRESS = "progress"  # the running job's progress, in the export's folder (its row commits with the files)
PART = ".part"  # a file being written; renamed when the export is done


class _Writer:
    """The export's files, written as the job goes: each resource appended to its type's file once (the ids
    written are remembered, the resources not), the progress file rewritten after each patient."""

    def __init__(self, target: Path, types: list[str]) -> None:
        self.target, self.types = target, types
        target.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, IO[str]] = {}
        self.seen: dict[str, set[str]] = {t: set() for t in types}

    def write(self, resource: dict[str, Any]) -> None:
        type_, id_ = resource["resourceType"], resource["id"]
        if id_ in self.seen[type_]:
            return
        self.seen[type_].add(id_)
        out = self.files.get(type_)
        if out is None:
            out = self.files[type_] = (self.target / f"{type_}.ndjson{PART}").open("w", encoding="utf-8")
        out.write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n")

    def progress(self, done: int, total: int) -> None:
        written = ", ".join(f"{t} {len(self.seen[t])}" for t in self.types if self.seen[t])
        tmp = self.target / f"{PROGRESS}{PART}"
        tmp.write_text(f"patients {done}/{total}" + (f"; written: {written}" if written else ""), encoding="utf-8")
        tmp.replace(self.target / PROGRESS)

    def finish(self) -> list[dict[str, Any]]:
        files = []
        for type_ in self.types:
            out = self.files.pop(type_, None)
            if out is None:
                continue
            out.close()
            path = self.target / f"{type_}.ndjson"
            (self.target / f"{type_}.ndjson{PART}").replace(path)
            files.append({"type": type_, "file": path.name, "count": len(self.seen[type_])})
        (self.target / PROGRESS).unlink(missing_ok=True)
        return files

    def abandon(self) -> None:
        for out in self.files.values():
            out.close()
        shutil.rmtree(self.target, ignore_errors=True)


def run(db: Session, export_id: int) -> None:
    """The job: every patient the client's institution may see (or the group's members), through $everything
    asking only for the export's types, streamed into one ndjson file per type; progress reported in the export's
    folder as it goes. The row is not written until the end (no lock held on it while the job runs, so a DELETE
    answers at once); the final write is conditional (repository.finish_export): an export cancelled meanwhile stays
    cancelled and the job removes the files it wrote."""
    row = kit.get(db, BulkExport, export_id)
    if row is None or row.status != "queued":
        return  # cancelled before it ran, or already done
    user = kit.get(db, User, row.user_id)
    if user is None or not user.active:
        row.status, row.error, row.finished_at = "failed", "client deactivated", clock.now()
        return
    subject = replace(auth.build_subject(db, user, row.institution_id, via_token=True),
                      scopes=frozenset(row.scope.split()))
    types = row.types.split(",")
    wanted = {t for t in types if clients.permits(subject.scopes, t, "read")}
    try:
        patients = groups.members(db, subject, groups.find(db, subject, row.group_id)) if row.group_id \
            else repository.readable_patient_ids(db, subject)
    except NotFound:
        row.status, row.error, row.finished_at = "failed", "group not found", clock.now()
        return
    writer = _Writer(folder(row.id), types)
    try:
        writer.progress(0, len(patients))
        for done, patient_id in enumerate(patients, 1):
            for resource in everything(db, subject, str(patient_id), wanted):
                if resource["resourceType"] in wanted and _updated_since(resource, row.since):
                    writer.write(resource)
            writer.progress(done, len(patients))
        output = writer.finish()
    except BaseException:
        writer.abandon()
        raise
    if not repository.finish_export(db, row.id, output=output, progress=f"patients {len(patients)}/{len(patients)}",
                                    status="done", finished_at=clock.now()):
        writer.abandon()  # cancelled while the job ran


def progress(row: BulkExport) -> str:
    """X-Progress of an export not done: what the job has written so far, from its folder."""
    try:
        return (folder(row.id) / PROGRESS).read_text(encoding="utf-8")[:200]
    except OSError:
        return "in the queue"


def expires(row: BulkExport) -> datetime:
    return (row.finished_at or row.created_at) + timedelta(hours=get_settings().fhir_export_hours)


def expire(db: Session) -> int:
    """The periodic job (fhir/tasks.py): remove the files of the exports finished longer than fhir_export_hours
    ago (the manifest's Expires); their status URL then answers 404."""
    now = clock.now()
    rows = repository.exports_finished_before(db, now - timedelta(hours=get_settings().fhir_export_hours))
    for row in rows:
        shutil.rmtree(folder(row.id), ignore_errors=True)
        row.status = "expired"
    return len(rows)


def of_client(db: Session, subject: Subject, export_id: int) -> BulkExport:
    """The export, when the subject's account asked for it (404 for anyone else, as every other resource)."""
    row = kit.get(db, BulkExport, export_id)
    if row is None or row.user_id != subject.user_id or row.status in ("cancelled", "expired"):
        raise NotFound()
    return row


def manifest(row: BulkExport, base: str) -> dict[str, Any]:
    return {"transactionTime": (row.finished_at or row.created_at).isoformat(), "request": row.request_url,
            "requiresAccessToken": True,
            "output": [{"type": f["type"], "url": f"{base}/_bulk/{row.id}/{f['file']}", "count": f["count"]}
                       for f in row.output or []],
            "error": [{"type": "OperationOutcome", "url": f"{base}/_bulk/{row.id}/error"}] if row.error else []}


def file_of(db: Session, subject: Subject, export_id: int, name: str) -> Path:
    row = of_client(db, subject, export_id)
    if row.status != "done" or name not in {f["file"] for f in row.output or []}:
        raise NotFound()
    audit.record(db, subject, "download", "bulk_export", row.id, detail={"file": name})
    return folder(row.id) / name


def cancel(db: Session, subject: Subject, export_id: int) -> None:
    """DELETE on the status URL: a queued export is not run (a running job sees it at its end and removes what it
    wrote); a finished one's files are removed."""
    row = of_client(db, subject, export_id)
    finished = row.status != "queued"
    row.status, row.finished_at = "cancelled", clock.now()
    if finished:  # a running job's folder is its own until it ends
        shutil.rmtree(folder(row.id), ignore_errors=True)
    audit.record(db, subject, "cancel", "bulk_export", row.id)
