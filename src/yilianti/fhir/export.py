"""Bulk data export (FHIR Bulk Data Access: `$export` of the system or of all patients) for system clients.

The kick-off (`Prefer: respond-async`) records the request — the client's account, institution and scopes — and
queues an outbox message; the job (fhir/tasks.py, on the procrastinate queue under `yilianti worker`) reads each
patient the institution may see through Patient/$everything, so under the same policy, consent and audit as a
direct request, and writes one ndjson file per resource type under var_dir/fhir-export/<id>/. The status URL
answers 202 with X-Progress until the files are there, then the manifest; the files are fetched with the same
token; DELETE cancels the export or removes its files. Only the client that asked sees any of it (404 otherwise).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import clients
from yilianti.auth import service as auth
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import AppError, Forbidden, NotFound
from yilianti.fhir import repository
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
             since: str | None, output_format: str | None, request_url: str) -> BulkExport:
    if subject.scopes is None:
        raise Forbidden("批量导出仅限系统客户端（OAuth2 客户端凭证）")
    if not prefer or "respond-async" not in prefer:
        raise ExportRefused(fields={"Prefer": "须为 respond-async"})
    if output_format and output_format not in FORMATS:
        raise ExportRefused(fields={"_outputFormat": "仅支持 application/fhir+ndjson"})
    assert subject.acting_institution_id is not None
    row = BulkExport(user_id=subject.user_id, institution_id=subject.acting_institution_id,
                     scope=" ".join(sorted(subject.scopes)), level=level, types=",".join(_types(types, subject)),
                     since=_since(since), request_url=request_url[:2000], status="queued")
    db.add(row)
    db.flush()
    outbox.enqueue(db, TOPIC, {"export_id": row.id})
    audit.record(db, subject, "export", "bulk_export", row.id,
                 detail={"level": level, "types": row.types, "since": since})
    return row


def folder(export_id: int) -> Path:
    return get_settings().var_dir / "fhir-export" / str(export_id)


def _updated_since(resource: dict[str, Any], since: datetime | None) -> bool:
    updated = resource.get("meta", {}).get("lastUpdated")
    if since is None or not updated:
        return True  # no time to compare: kept (it may have changed)
    return datetime.fromisoformat(updated.replace("Z", "+00:00")) >= since


def run(db: Session, export_id: int) -> None:
    """The job: every patient the client's institution may see, through $everything, into ndjson files."""
    row = kit.get(db, BulkExport, export_id)
    if row is None or row.status != "queued":
        return  # cancelled before it ran, or already done
    user = kit.get(db, User, row.user_id)
    if user is None or not user.active:
        row.status, row.error, row.finished_at = "failed", "client deactivated", clock.now()
        return
    row.status = "running"
    subject = replace(auth.build_subject(db, user, row.institution_id, via_token=True),
                      scopes=frozenset(row.scope.split()))
    wanted = set(row.types.split(","))
    out: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in row.types.split(",")}
    patients = repository.readable_patient_ids(db, subject)
    for done, patient_id in enumerate(patients, 1):
        for resource in everything(db, subject, str(patient_id), wanted):
            type_ = resource["resourceType"]
            if type_ in wanted and clients.permits(subject.scopes, type_, "read") and \
                    _updated_since(resource, row.since):
                out[type_][resource["id"]] = resource
        row.progress = f"{done}/{len(patients)}"
    target = folder(row.id)
    target.mkdir(parents=True, exist_ok=True)
    files = []
    for type_, resources in out.items():
        if not resources:
            continue
        path = target / f"{type_}.ndjson"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
                               for r in resources.values()), encoding="utf-8")
        tmp.replace(path)
        files.append({"type": type_, "file": path.name, "count": len(resources)})
    row.output, row.status, row.finished_at = files, "done", clock.now()


def of_client(db: Session, subject: Subject, export_id: int) -> BulkExport:
    """The export, when the subject's account asked for it (404 for anyone else, as every other resource)."""
    row = kit.get(db, BulkExport, export_id)
    if row is None or row.user_id != subject.user_id or row.status == "cancelled":
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
    """DELETE on the status URL: a queued export is not run; a finished one's files are removed."""
    row = of_client(db, subject, export_id)
    row.status, row.finished_at = "cancelled", clock.now()
    shutil.rmtree(folder(row.id), ignore_errors=True)
    audit.record(db, subject, "cancel", "bulk_export", row.id)
