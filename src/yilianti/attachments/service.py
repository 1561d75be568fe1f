"""Attachments any domain can reuse (referral, teleconsultation, …).

Stable API (other domains call exactly these):

- ``store(db, subject, patient_id, owner_type, owner_id, filename, content_type, data) -> Attachment``
  The kind is sniffed from the magic bytes (PDF, JPEG, PNG, DICOM Part 10); the client's
  content type is ignored except for the audit detail. Empty, too large
  (``YILIANTI_ATTACHMENT_MAX_BYTES``) or unrecognised files raise ``InvalidInput`` (422)
  and nothing is stored. The uploader must be able to see the patient (else 404).
- ``list_for(db, owner_type, owner_id) -> list[Attachment]`` — live attachments, oldest
  first. No access check: the caller has already checked that the owner is visible.
- ``open_for_download(db, subject, attachment_id, owner=None) -> Download`` — patient access
  check through ``authz.policy.require_patient`` (404 when not visible) and an audit row
  ("download", "attachment"). ``owner=(type, id)`` also insists the file belongs to it.
- ``delete(db, subject, attachment_id, owner=None) -> Attachment`` — soft delete (the file
  stays for the record), only by the uploading institution (403 otherwise), audited.

Files are content-addressed under ``YILIANTI_ATTACHMENTS_DIR`` (default ``var_dir/attachments``)
as ``<sha[:2]>/<sha>``, written atomically; the same bytes are stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from yilianti.attachments import repository
from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.attachment import Attachment

KINDS: dict[str, tuple[str, str]] = {  # kind -> (content type, file extension)
    "pdf": ("application/pdf", ".pdf"),
    "jpeg": ("image/jpeg", ".jpg"),
    "png": ("image/png", ".png"),
    "dicom": ("application/dicom", ".dcm"),
}


def sniff(data: bytes) -> str | None:
    """The file's kind from its first bytes, or None when it is none of the allowed kinds."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 132 and data[128:132] == b"DICM":  # Part 10: 128-byte preamble + "DICM"
        return "dicom"
    return None


def storage_dir() -> Path:
    settings = get_settings()
    return settings.attachments_dir or (settings.var_dir / "attachments")


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} B"


def clean_filename(name: str | None, kind: str) -> str:
    """Keep only the base name, without control or path characters; never empty."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C")
    base = re.sub(r'[<>:"|?*]', "_", base).strip().strip(".")
    if not base:
        base = "attachment" + KINDS[kind][1]
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 10 else base[:200]
    return base


def _write(sha: str, data: bytes) -> str:
    key = f"{sha[:2]}/{sha}"
    path = storage_dir() / key
    if path.exists() and path.stat().st_size == len(data):
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".up-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return key


def store(db: Session, subject: Subject, patient_id: int, owner_type: str, owner_id: int,
          filename: str | None, content_type: str | None, data: bytes) -> Attachment:
    if policy.decide(db, subject, patient_id) is None:
        raise NotFound()
    if not data:
        raise InvalidInput("文件是空的", code="attachment_empty", fields={"file": "文件是空的"})
    limit = get_settings().attachment_max_bytes
    if len(data) > limit:
        raise InvalidInput("文件超过大小限制（{limit}）", code="attachment_too_large", status=413,
                           fields={"file": "文件超过大小限制"}, limit=human_size(limit))
    kind = sniff(data)
    if kind is None:
        raise InvalidInput("只能上传 PDF、JPEG、PNG 或 DICOM 文件", code="attachment_type",
                           status=415, fields={"file": "只能上传 PDF、JPEG、PNG 或 DICOM 文件"})
    sha = hashlib.sha256(data).hexdigest()
    key = _write(sha, data)
    att = Attachment(
        owner_type=owner_type, owner_id=owner_id, patient_id=patient_id,
        institution_id=subject.acting_institution_id, uploaded_by_user_id=subject.user_id,
        filename=clean_filename(filename, kind), kind=kind, content_type=KINDS[kind][0],
        size_bytes=len(data), sha256=sha, storage_key=key,
    )
    db.add(att)
    db.flush()
    audit.record(db, subject, "create", "attachment", att.id, patient_id=patient_id,
                 detail={"owner_type": owner_type, "owner_id": owner_id, "kind": kind, "size": len(data),
                         "sha256": sha, "client_content_type": (content_type or "")[:100]})
    return att


def copy_all(db: Session, source: tuple[str, int], target: tuple[str, int]) -> list[Attachment]:
    """The live attachments of `source` attached to `target` too: a row of its own for each, the same stored
    file (content-addressed, nothing written to storage), uploader and institution kept."""
    copies = [Attachment(owner_type=target[0], owner_id=target[1], patient_id=att.patient_id,
                         institution_id=att.institution_id, uploaded_by_user_id=att.uploaded_by_user_id,
                         filename=att.filename, kind=att.kind, content_type=att.content_type,
                         size_bytes=att.size_bytes, sha256=att.sha256, storage_key=att.storage_key)
              for att in repository.attachments_of(db, *source)]
    db.add_all(copies)
    return copies


@dataclass(frozen=True)
class Download:
    attachment: Attachment
    data: bytes

    @property
    def content_disposition(self) -> str:
        from urllib.parse import quote

        ascii_name = self.attachment.filename.encode("ascii", "ignore").decode() or (
            "attachment" + KINDS[self.attachment.kind][1])
        ascii_name = ascii_name.replace('"', "")
        return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(self.attachment.filename)}"


def _get_live(db: Session, attachment_id: int, owner: tuple[str, int] | None) -> Attachment:
    att = kit.get(db, Attachment, attachment_id)
    if att is None or att.deleted_at is not None:
        raise NotFound()
    if owner is not None and (att.owner_type, att.owner_id) != owner:
        raise NotFound()
    return att


def open_for_download(db: Session, subject: Subject, attachment_id: int,
                      owner: tuple[str, int] | None = None) -> Download:
    att = _get_live(db, attachment_id, owner)
    policy.require_patient(db, subject, att.patient_id, action="download", resource_type="attachment",
                           resource_id=att.id, detail={"owner_type": att.owner_type, "owner_id": att.owner_id})
    path = storage_dir() / att.storage_key
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound("附件文件已不在存储中，请联系管理员", code="attachment_missing") from None
    return Download(att, data)


def delete(db: Session, subject: Subject, attachment_id: int, owner: tuple[str, int] | None = None) -> Attachment:
    att = _get_live(db, attachment_id, owner)
    if policy.decide(db, subject, att.patient_id) is None:
        raise NotFound()
    if att.institution_id != subject.acting_institution_id:
        raise Forbidden("只有上传附件的机构可以删除它")
    att.deleted_at = clock.now()
    att.deleted_by_user_id = subject.user_id
    audit.record(db, subject, "delete", "attachment", att.id, patient_id=att.patient_id,
                 detail={"owner_type": att.owner_type, "owner_id": att.owner_id, "filename": att.filename})
    db.flush()
    return att
