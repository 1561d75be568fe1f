"""DICOMweb (DICOM PS3.18) over the platform's own imaging store, at /dicomweb (CONTRACTS.md "Added for wave 2").

- QIDO-RS: studies, a study's series, a series' (or a study's) instances, as the DICOM JSON model; matching on
  StudyInstanceUID, PatientID, PatientName (part of the name), AccessionNumber, StudyDate (a date or a range),
  ModalitiesInStudy and, for series, Modality / SeriesInstanceUID; `limit` (at most 500) and `offset`.
- WADO-RS: a study, series or instance as multipart/related; type="application/dicom" (the files as received),
  metadata as application/dicom+json with BulkDataURIs (documents made once at ingest: dicomweb/document.py), bulk data, frames (uncompressed, little endian,
  multipart/related; type="application/octet-stream"; compressed images are decoded) and rendered PNGs.
- STOW-RS: multipart/related; type="application/dicom" (the instances' files), or type="application/dicom+json"
  (PS3.18 10.5.1.2.2: DICOM JSON metadata parts and bulk data parts by Content-Location: dicomweb/stowjson.py,
  made into the same files); each instance goes through the C-STORE receiver's
  ingest (`receivers.ingest.ingest_dicom`): AccessionNumber links it to its order, an unknown accession keeps it
  in the quarantine (success to the sender, listed for a person). An accession of an order the sender may not
  open, or a SOP Instance UID already stored for such an order, is quarantined apart, as the web upload does
  with a foreign accession (nothing of another member's is linked or overwritten, and nothing says it exists).
  The answer is the DICOM JSON store response (ReferencedSOPSequence, FailedSOPSequence with FailureReason).

Access: every read is the shared record's rule for one entry (`orders.workflow.in_record` in searches,
`policy.entry_access` for a study: the acting institution placed or reads the order and may see the patient —
`orders.workflow.visible`, the order page's rule —, or it sees the patient's shared record: consent in force, an
including grant, break-glass); any other member's study is not found (404, or absent from a search). STOW-RS
links only to orders of the sender's own sides (`visible`). Searches are audited as a `search` with the studies found; reads of images and metadata as
`diagnostics.image_view` / `diagnostics.study_view` once per user and study in ten minutes (a viewer fetches
one request per frame); downloads of whole files (`diagnostics.dicom_retrieve`) every time.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.diagnostics import repository as repo
from yilianti.diagnostics.dicomweb import document, stowjson
from yilianti.diagnostics.dicomweb.stowjson import CANNOT_UNDERSTAND, DOES_NOT_MATCH, OUT_OF_RESOURCES
from yilianti.diagnostics.imaging import service as imaging
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.receivers import ingest
from yilianti.diagnostics.receivers.dicom import instance_path
from yilianti.exceptions import AppError, InvalidInput, NotFound
from yilianti.kit import repository as kit
from yilianti.models.diagnostics import DiagnosticOrder, ImagingInstance, ImagingStudy
from yilianti.models.patient import Patient
from yilianti.patients.service import masked_query
from yilianti.record.sources import order_institutions

log = logging.getLogger(__name__)

BASE = "/dicomweb"
DICOM_JSON = "application/dicom+json"
LIMIT_MAX = 500
UID_RE = re.compile(r"[0-9]+(\.[0-9]+)*")
EXPLICIT_LE = "1.2.840.10008.1.2.1"
NATIVE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})  # uncompressed little endian
SEX = {"男": "M", "女": "F"}



class UnsupportedMediaType(AppError):
    status, code, default_message = 415, "unsupported_media_type", "请求的内容类型不受支持"


class NotAcceptable(AppError):
    status, code, default_message = 406, "not_acceptable", "无法以请求的媒体类型返回"


# ------------------------------------------------------------------------------ DICOM JSON


def element(vr: str, *values: Any) -> dict[str, Any]:
    """One attribute of the DICOM JSON model (PS3.18 F.2); empty values are left out."""
    kept = [v for v in values if v not in (None, "")]
    if not kept:
        return {"vr": vr}
    if vr == "PN":
        kept = [{"Alphabetic": str(v)} for v in kept]
    return {"vr": vr, "Value": kept}


def _da(value: date | None) -> str | None:
    return value.strftime("%Y%m%d") if value else None


def check_uid(value: str, field: str) -> str:
    if len(value) > 64 or not UID_RE.fullmatch(value):
        raise InvalidInput(fields={field: "应为 DICOM UID（数字与点，至多 64 个字符）"})
    return value


# ------------------------------------------------------------------------------ QIDO-RS


@dataclass
class StudyQuery:
    study_uids: list[str]
    patient_identifier: str | None
    patient_name: str | None
    accession: str | None
    modalities: list[str]
    date_from: date | None
    date_to: date | None
    limit: int
    offset: int
    description: str | None = None

    def as_text(self) -> str:
        parts = [f"StudyInstanceUID={','.join(self.study_uids)}" if self.study_uids else "",
                 f"PatientID={self.patient_identifier}" if self.patient_identifier else "",
                 f"PatientName={self.patient_name}" if self.patient_name else "",
                 f"AccessionNumber={self.accession}" if self.accession else "",
                 f"StudyDescription={self.description}" if self.description else "",
                 f"ModalitiesInStudy={','.join(self.modalities)}" if self.modalities else "",
                 f"StudyDate={_da(self.date_from) or ''}-{_da(self.date_to) or ''}"
                 if self.date_from or self.date_to else ""]
        return " ".join(p for p in parts if p)


def _date(text: str, field: str) -> date | None:
    text = text.strip().replace(".", "")  # ACR-NEMA style dots
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise InvalidInput(fields={field: "日期格式应为 YYYYMMDD 或 YYYYMMDD-YYYYMMDD"}) from None


def date_range(value: str | None) -> tuple[date | None, date | None]:
    """A DA matching key: one date, or a range with either end open (PS3.4 C.2.2.2.5)."""
    if not value:
        return None, None
    if "-" in value:
        start, _, end = value.partition("-")
        first, last = _date(start, "StudyDate"), _date(end, "StudyDate")
        if first and last and first > last:
            raise InvalidInput(fields={"StudyDate": "起始日期晚于结束日期"})
        return first, last
    one = _date(value, "StudyDate")
    return one, one


def _text(value: str | None, field: str) -> str | None:
    value = (value or "").strip()
    if len(value) > 64:
        raise InvalidInput(fields={field: "至多 64 个字符"})
    return value.strip("*") or None  # a wildcard alone matches everything


def _values(values: list[str] | None) -> list[str]:
    """A multi-valued key: repeated, or comma- or backslash-separated."""
    return [v.strip() for one in values or [] for v in re.split(r"[,\\]", one) if v.strip()]


MATCHING_KEYS = ("StudyInstanceUID", "PatientID", "PatientName", "AccessionNumber", "StudyDate", "ModalitiesInStudy",
                 "StudyDescription", "SeriesInstanceUID", "Modality", "SOPInstanceUID")
_BY_TAG = {f"{tag_for_keyword(k):08X}": k for k in MATCHING_KEYS}


def matching_keys(params: Mapping[str, str] | Any) -> dict[str, list[str]]:
    """The query's matching keys by keyword, whether sent as keywords (PatientID) or as tags (00100020, as OHIF
    sends its search for a patient's other studies)."""
    out: dict[str, list[str]] = {}
    for name in set(params.keys()):
        keyword = name if name in MATCHING_KEYS else _BY_TAG.get(name.upper())
        if keyword:
            out.setdefault(keyword, []).extend(params.getlist(name) if hasattr(params, "getlist") else [params[name]])
    return out


def first_key(keys: dict[str, list[str]], keyword: str) -> str | None:
    values = keys.get(keyword) or []
    return values[0] if values else None


def study_query(keys: dict[str, list[str]], limit: int, offset: int) -> StudyQuery:
    uids = [check_uid(u, "StudyInstanceUID") for u in _values(keys.get("StudyInstanceUID"))]
    first, last = date_range(first_key(keys, "StudyDate"))
    mods = [m.upper() for m in _values(keys.get("ModalitiesInStudy"))]
    if any(len(m) > 16 for m in mods):
        raise InvalidInput(fields={"ModalitiesInStudy": "至多 16 个字符"})
    return StudyQuery(uids, _text(first_key(keys, "PatientID"), "PatientID"),
                      _text(first_key(keys, "PatientName"), "PatientName"),
                      _text(first_key(keys, "AccessionNumber"), "AccessionNumber"), mods, first, last,
                      min(limit, LIMIT_MAX), offset, _text(first_key(keys, "StudyDescription"), "StudyDescription"))


def _study_url(base: str, study: ImagingStudy) -> str:
    return f"{base}{BASE}/studies/{study.study_instance_uid}"


def study_json(base: str, study: ImagingStudy, patient: Patient, series: int | None) -> dict[str, Any]:
    return {
        "00080020": element("DA", _da(study.study_date)),
        "00080050": element("SH", study.accession_number),
        "00080056": element("CS", "ONLINE"),
        "00080061": element("CS", study.modality),
        "00080090": element("PN"),
        "00081030": element("LO", study.description),
        "00081190": element("UR", _study_url(base, study)),
        "00100010": element("PN", patient.name),
        "00100020": element("LO", study.patient_identifier),
        "00100021": element("LO", study.issuer),
        "00100030": element("DA", _da(patient.birth_date)),
        "00100040": element("CS", SEX.get(patient.sex, "O")),
        "0020000D": element("UI", study.study_instance_uid),
        "00200010": element("SH"),
        "00201206": element("IS", series),
        "00201208": element("IS", study.instance_count),
    }


def _matching(db: Session, subject: Subject, q: StudyQuery) -> list[tuple[ImagingStudy, DiagnosticOrder, Patient]]:
    """The studies the shared record shows the subject (`workflow.in_record`) under the query, newest first."""
    return repo.studies_matching(db, workflow.in_record(subject), study_uids=q.study_uids,
                                 patient_identifier=q.patient_identifier, patient_name=q.patient_name,
                                 accession=q.accession, modalities=q.modalities, date_from=q.date_from,
                                 date_to=q.date_to, description=q.description, limit=q.limit, offset=q.offset)


def _audit_search(db: Session, subject: Subject, q: StudyQuery,
                  rows: list[tuple[ImagingStudy, DiagnosticOrder, Patient]]) -> None:
    """One `search` row with the studies found; basis `shared` (with the other members) when another member's
    studies were among them, as the record's read is audited."""
    others = sorted({i for _s, o, _p in rows if subject.acting_institution_id not in order_institutions(o)
                     for i in order_institutions(o)})
    audit.record(db, subject, "search", "imaging_study", None, basis="shared" if others else None,
                 detail={"q": masked_query(q.as_text()), "results": [s.id for s, _o, _p in rows],
                         **({"other_institutions": others} if others else {})})


def search_studies(db: Session, subject: Subject, q: StudyQuery, base: str) -> list[dict[str, Any]]:
    """The studies the subject may see under the query; audited as one search with the studies found."""
    rows = _matching(db, subject, q)
    counts = repo.series_counts(db, [s.id for s, _o, _p in rows])
    _audit_search(db, subject, q, rows)
    return [study_json(base, s, p, counts.get(s.id, 0)) for s, _o, p in rows]


@dataclass
class Opened:
    study: ImagingStudy
    order: DiagnosticOrder
    patient: Patient
    basis: str
    grant_id: int | None = None


def open_study(db: Session, subject: Subject, study_uid: str) -> Opened:
    """The study, if the shared record shows its order to the subject (`policy.entry_access`; 404 otherwise),
    with the basis its read is audited under (`shared` for another member's). Not audited: the caller audits."""
    check_uid(study_uid, "study")
    row = repo.visible_study(db, workflow.in_record(subject), study_uid)
    if row is None:
        raise NotFound()
    access, basis = policy.entry_access(db, subject, row[1].patient_id, order_institutions(row[1]))
    return Opened(row[0], row[1], row[2], basis, access.grant_id)


def _audit_view(db: Session, subject: Subject, opened: Opened, action: str, **detail: Any) -> None:
    detail = {**detail, "grant_id": opened.grant_id}
    imaging.audit_image_view(db, subject, opened.study.id, opened.order.patient_id, opened.basis,
                             {k: v for k, v in detail.items() if v is not None}, action=action)


@lru_cache(maxsize=4096)
def _header(path: str, mtime_ns: int) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def header(path: str) -> Dataset:
    """The instance's attributes without its pixels (cached while the file is unchanged; do not modify)."""
    try:
        return _header(path, Path(path).stat().st_mtime_ns)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        log.warning("instance %s unreadable: %s", path, exc)
        return Dataset()


@dataclass
class SeriesRow:
    uid: str
    instances: list[ImagingInstance]

    @property
    def first(self) -> ImagingInstance:
        return self.instances[0]


def series_rows(db: Session, study: ImagingStudy, series_uid: str | None = None) -> list[SeriesRow]:
    """The study's series (or one), each with its instances in InstanceNumber order."""
    groups: dict[str, list[ImagingInstance]] = {}
    for inst in repo.instances_of_study(db, study.id):
        uid = inst.series_instance_uid or ""
        if series_uid is None or uid == series_uid:
            groups.setdefault(uid, []).append(inst)
    for members in groups.values():
        members.sort(key=lambda i: (i.instance_number is None, i.instance_number or 0, i.id))
    return [SeriesRow(uid, members) for uid, members in groups.items()]


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


SERIES_TAGS = {"00080060": "Modality", "0008103E": "SeriesDescription", "00200011": "SeriesNumber"}


def series_head(row: SeriesRow, stored: str | None) -> dict[str, Any]:
    """The series-level attributes of the series' first instance: from its metadata document made at ingest, or
    (an instance stored before documents were made) from its file's header."""
    if stored is not None:
        return document.first_values(stored, *SERIES_TAGS)
    head = header(row.first.path)
    return {tag: head.get(keyword) for tag, keyword in SERIES_TAGS.items()}


def series_json(base: str, study: ImagingStudy, row: SeriesRow, stored: str | None = None) -> dict[str, Any]:
    head = series_head(row, stored)
    return {
        "00080060": element("CS", str(head["00080060"] or study.modality or "")),
        "0008103E": element("LO", str(head["0008103E"] or "")),
        "00081190": element("UR", f"{_study_url(base, study)}/series/{row.uid}"),
        "0020000D": element("UI", study.study_instance_uid),
        "0020000E": element("UI", row.uid),
        "00200011": element("IS", _int(head["00200011"])),
        "00201209": element("IS", len(row.instances)),
    }


def _series_of(db: Session, base: str, study: ImagingStudy, modality: str | None,
               series_uid: str | None) -> list[dict[str, Any]]:
    if series_uid:
        check_uid(series_uid, "SeriesInstanceUID")
    groups = series_rows(db, study, series_uid or None)
    stored = repo.metadata_documents(db, [r.first.id for r in groups])
    rows = [series_json(base, study, r, stored.get(r.first.id)) for r in groups]
    if modality:
        rows = [r for r in rows if modality.upper() in r["00080060"].get("Value", [])]
    rows.sort(key=lambda r: (r["00200011"].get("Value", [2**31])[0], r["0020000E"]["Value"][0]))
    return rows


def search_series(db: Session, subject: Subject, study_uid: str, base: str, *, modality: str | None = None,
                  series_uid: str | None = None, limit: int = LIMIT_MAX, offset: int = 0) -> list[dict[str, Any]]:
    opened = open_study(db, subject, study_uid)
    rows = _series_of(db, base, opened.study, modality, series_uid)
    _audit_view(db, subject, opened, "diagnostics.study_view")
    return rows[offset:offset + min(limit, LIMIT_MAX)]


def search_all(db: Session, subject: Subject, keys: dict[str, list[str]], base: str, level: str, limit: int,
               offset: int) -> list[dict[str, Any]]:
    """QIDO-RS /series or /instances: those of the studies the subject may see that match the study-level keys
    (newest study first), under the series- or instance-level keys; audited as a search."""
    q = study_query(keys, LIMIT_MAX, 0)
    out: list[dict[str, Any]] = []
    wanted = offset + min(limit, LIMIT_MAX)
    seen = []
    for study, order, patient in _matching(db, subject, q):
        if len(out) >= wanted:
            break
        seen.append((study, order, patient))
        out += _series_of(db, base, study, first_key(keys, "Modality"), first_key(keys, "SeriesInstanceUID")) \
            if level == "series" else _instances_of(db, base, study, first_key(keys, "SeriesInstanceUID"),
                                                   first_key(keys, "SOPInstanceUID"))
    _audit_search(db, subject, q, seen)
    return out[offset:wanted]


def instance_json(base: str, study: ImagingStudy, inst: ImagingInstance) -> dict[str, Any]:
    url = f"{_study_url(base, study)}/series/{inst.series_instance_uid}/instances/{inst.sop_instance_uid}"
    return {
        "00080016": element("UI", inst.sop_class_uid),
        "00080018": element("UI", inst.sop_instance_uid),
        "00081190": element("UR", url),
        "0020000D": element("UI", study.study_instance_uid),
        "0020000E": element("UI", inst.series_instance_uid),
        "00200013": element("IS", inst.instance_number),
    }


def _instances_of(db: Session, base: str, study: ImagingStudy, series_uid: str | None,
                  sop_uid: str | None) -> list[dict[str, Any]]:
    if series_uid:
        check_uid(series_uid, "series")
    return [instance_json(base, study, i) for r in series_rows(db, study, series_uid) for i in r.instances
            if not sop_uid or i.sop_instance_uid == sop_uid]


def search_instances(db: Session, subject: Subject, study_uid: str, base: str, series_uid: str | None = None,
                     *, sop_uid: str | None = None, limit: int = LIMIT_MAX, offset: int = 0) -> list[dict[str, Any]]:
    opened = open_study(db, subject, study_uid)
    found = _instances_of(db, base, opened.study, series_uid, sop_uid)
    _audit_view(db, subject, opened, "diagnostics.study_view")
    return found[offset:offset + min(limit, LIMIT_MAX)]


# ------------------------------------------------------------------------------ WADO-RS


def instances(db: Session, subject: Subject, study_uid: str, series_uid: str | None = None,
              sop_uid: str | None = None) -> tuple[Opened, list[ImagingInstance]]:
    """The study's instances (of one series, or one instance); 404 when none (or the study is not visible)."""
    opened = open_study(db, subject, study_uid)
    for uid, name in ((series_uid, "series"), (sop_uid, "instance")):
        if uid is not None:
            check_uid(uid, name)
    if sop_uid is not None:  # one instance (a viewer's frame): looked up by its UID, not among the study's
        inst = repo.instance_with_uid(db, sop_uid)
        found = [inst] if inst is not None and inst.study_id == opened.study.id and \
            (series_uid is None or inst.series_instance_uid == series_uid) else []
    else:
        found = [i for r in series_rows(db, opened.study, series_uid) for i in r.instances]
    if not found:
        raise NotFound()
    return opened, found


def retrieve(db: Session, subject: Subject, study_uid: str, series_uid: str | None = None,
             sop_uid: str | None = None) -> list[ImagingInstance]:
    """The files to send (audited as a download every time)."""
    opened, found = instances(db, subject, study_uid, series_uid, sop_uid)
    audit.record(db, subject, "diagnostics.dicom_retrieve", "imaging_study", opened.study.id,
                 patient_id=opened.order.patient_id, basis=opened.basis,
                 detail={k: v for k, v in (("series_instance_uid", series_uid), ("sop_instance_uid", sop_uid),
                                           ("instances", len(found)), ("grant_id", opened.grant_id))
                         if v is not None})
    return found


def metadata(db: Session, subject: Subject, base: str, study_uid: str, series_uid: str | None = None,
             sop_uid: str | None = None) -> bytes:
    """The instances' DICOM JSON (one array, as answered): their documents made at ingest
    (dicomweb/document.py), each with its URL; an instance stored before them (until `yilianti dicom-metadata`
    made its document) is read from its file."""
    opened, found = instances(db, subject, study_uid, series_uid, sop_uid)
    _audit_view(db, subject, opened, "diagnostics.study_view", series_instance_uid=series_uid)
    stored = repo.metadata_documents(db, [i.id for i in found])
    return document.array([document.with_url(stored.get(i.id) or file_document(i),
                                             instance_url(base, opened.study, i)) for i in found])


def instance_url(base: str, study: ImagingStudy, inst: ImagingInstance) -> str:
    return f"{_study_url(base, study)}/series/{inst.series_instance_uid}/instances/{inst.sop_instance_uid}"


def file_document(inst: ImagingInstance) -> str:
    """The document made from the instance's file (the instances stored before documents were made at ingest)."""
    try:
        return document.from_file(inst.path)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        log.warning("instance %s unreadable: %s", inst.path, exc)
        raise imaging.NotDecodable(f"无法读取该实例 ({exc})") from exc


def backfill_metadata(db: Session, batch: int = 200) -> Iterator[tuple[int, int]]:
    """Make the documents of every instance without one (`yilianti dicom-metadata`), one transaction per batch:
    yields (made, unreadable) after each batch."""
    after, made, failed = 0, 0, 0
    while rows := repo.instances_without_metadata(db, after, batch):
        for inst in rows:
            try:
                repo.save_metadata_document(db, inst.id, file_document(inst))
                made += 1
            except imaging.NotDecodable:
                failed += 1
        after = rows[-1].id
        db.commit()
        yield made, failed


def _read(path: str) -> Dataset:
    try:
        return pydicom.dcmread(path)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise imaging.NotDecodable(f"无法读取该实例 ({exc})") from exc


def one_instance(db: Session, subject: Subject, study_uid: str, series_uid: str, sop_uid: str,
                 action: str, **detail: Any) -> ImagingInstance:
    opened, found = instances(db, subject, study_uid, series_uid, sop_uid)
    _audit_view(db, subject, opened, action, sop_instance_uid=sop_uid, **detail)
    return found[0]


def bulkdata(db: Session, subject: Subject, study_uid: str, series_uid: str, sop_uid: str, tag: str) -> bytes:
    """The raw value of one attribute (a BulkDataURI of the metadata)."""
    inst = one_instance(db, subject, study_uid, series_uid, sop_uid, "diagnostics.image_view")
    try:
        key = int(tag, 16)
    except ValueError:
        raise NotFound() from None
    ds = _read(inst.path)
    if key not in ds:
        raise NotFound()
    value = ds[key].value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise NotFound()


def frame_numbers(text: str) -> list[int]:
    """`1,2,3` (1-based, PS3.18 8.3.5.1.3)."""
    try:
        numbers = [int(n) for n in text.split(",")]
    except ValueError:
        raise InvalidInput(fields={"frames": "应为逗号分隔的帧号（从 1 开始）"}) from None
    if not numbers or len(numbers) > 1000 or any(n < 1 or n > 2**31 - 1 for n in numbers):
        raise InvalidInput(fields={"frames": "应为逗号分隔的帧号（从 1 开始）"})
    return numbers


def wants_syntax(accept: str | None, syntax: str) -> bool:
    """Whether the Accept header takes frames in this (compressed) transfer syntax as stored:
    `multipart/related; type="application/octet-stream"; transfer-syntax=*` (OHIF asks so) or the syntax's UID."""
    for one in (accept or "").split(","):
        _, params = media_params(one)
        if params.get("transfer-syntax") in ("*", syntax):
            return True
    return False


def frames(db: Session, subject: Subject, study_uid: str, series_uid: str, sop_uid: str, numbers: list[int],
           accept: str | None = None) -> tuple[list[bytes], str]:
    """The frames' pixels and their transfer syntax: as stored when native (uncompressed little endian) or when
    the client takes the stored compressed syntax (its codestreams, no decoding); otherwise decoded."""
    import numpy as np
    from pydicom.encaps import generate_frames

    inst = one_instance(db, subject, study_uid, series_uid, sop_uid, "diagnostics.image_view", frame=numbers[0])
    ds = _read(inst.path)
    if "PixelData" not in ds:
        raise imaging.NotDecodable("该实例没有图像数据 (no pixel data)", status=404)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if any(n > count for n in numbers):
        raise imaging.NotDecodable(f"帧号超出范围 (frame {max(numbers)} of {count})", status=404)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    if syntax in NATIVE and bits % 8 == 0:
        size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * bits // 8
        data = ds.PixelData
        return [bytes(data[(n - 1) * size:n * size]) for n in numbers], EXPLICIT_LE
    if syntax not in NATIVE and wants_syntax(accept, syntax):
        stored = list(generate_frames(ds.PixelData, number_of_frames=count))
        return [stored[n - 1] for n in numbers], syntax
    return [np.ascontiguousarray(imaging.pixels(ds, n - 1 if count > 1 else None)).tobytes() for n in numbers], \
        EXPLICIT_LE


def rendered(db: Session, subject: Subject, study_uid: str, series_uid: str, sop_uid: str, number: int = 1,
             size: int | None = None) -> bytes:
    inst = one_instance(db, subject, study_uid, series_uid, sop_uid, "diagnostics.image_view", frame=number)
    return imaging.preview_png(inst.path, number - 1, size=size)


# ------------------------------------------------------------------------------ multipart/related


def media_params(content_type: str) -> tuple[str, dict[str, str]]:
    """`multipart/related; type="application/dicom"; boundary=x` → ("multipart/related", {type, boundary})."""
    kind, _, rest = content_type.partition(";")
    params: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("([^"]*)"|[^;]*)', rest):
        params[m.group(1).lower()] = (m.group(3) if m.group(3) is not None else m.group(2)).strip()
    return kind.strip().lower(), params


def multipart_parts(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts (headers, content) of a multipart/related body."""
    kind, params = media_params(content_type)
    boundary = params.get("boundary", "")
    if kind != "multipart/related" or not boundary:
        raise UnsupportedMediaType("应为 multipart/related; type=\"application/dicom\"")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content[:-2] if content.endswith(b"\r\n") else content))
    if not parts:
        raise InvalidInput(fields={"body": "请求中没有 DICOM 实例"})
    return parts


def multipart_stream(parts: Iterator[tuple[str, bytes]], boundary: str) -> Iterator[bytes]:
    """A multipart/related body, one part at a time (a whole study is not held in memory)."""
    for content_type, data in parts:
        yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1") + data + b"\r\n"
    yield f"--{boundary}--\r\n".encode("latin-1")


def new_boundary() -> str:
    return f"ylt-{uuid.uuid4().hex}"


def files(found: list[ImagingInstance]) -> Iterator[tuple[str, bytes]]:
    for inst in found:
        try:
            data = Path(inst.path).read_bytes()
        except OSError:
            log.warning("instance %s could not be read for a WADO-RS answer", inst.id)
            continue
        meta = getattr(header(inst.path), "file_meta", None)
        syntax = getattr(meta, "TransferSyntaxUID", None)
        yield (f"application/dicom; transfer-syntax={syntax}" if syntax else "application/dicom"), data


def accepts(accept: str | None, *media_types: str) -> bool:
    """Whether an Accept header allows one of the media types (a missing or wildcard header allows all)."""
    if not accept:
        return True
    wanted = [media_params(a)[0] for a in accept.split(",")]
    return any(w in ("*/*", "multipart/*", *media_types) for w in wanted)


# ------------------------------------------------------------------------------ STOW-RS


@dataclass
class Stored:
    sop_class: str | None
    sop_uid: str | None
    failure: int | None = None  # a FailureReason; None when stored (or quarantined)
    url: str | None = None  # RetrieveURL once linked to an order


def _apart(db: Session, subject: Subject, data: bytes, sop_uid: str, accession: str) -> None:
    imaging.quarantine_apart(db, data, sop_uid, accession, f"stow:{subject.username}",
                             f"检查号 {accession or '(空)'} 无法关联 (the accession cannot be linked)")


def _uid(value: Any) -> str | None:
    """A UID as the store response may name it (None when missing or not a UID)."""
    text = str(value or "").strip()
    return text if len(text) <= 64 and UID_RE.fullmatch(text) else None


def _reject(db: Session, subject: Subject, data: bytes, exc: Exception) -> None:
    imaging.keep_rejected(db, subject, "stow", data, f"无法解析的 DICOM 数据集 (undecodable data set): {exc}"[:500], None)


def store_one(db: Session, subject: Subject, data: bytes, base: str, study_uid: str | None) -> Stored:
    """One instance of a STOW-RS request, by the C-STORE receiver's rules (module docstring). What is not DICOM,
    or lacks its UIDs, fails (0xC000) naming the UIDs it has, and is kept for a person."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - not DICOM: refused, and kept for a person
        _reject(db, subject, data, exc)
        return Stored(None, None, CANNOT_UNDERSTAND)
    sop_class, sop_uid, suid = (_uid(ds.get(k)) for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"))
    if sop_uid is None or suid is None:
        _reject(db, subject, data, ValueError("SOPInstanceUID / StudyInstanceUID missing or not UIDs"))
        return Stored(sop_class, sop_uid, CANNOT_UNDERSTAND)
    if study_uid is not None and suid != study_uid:
        return Stored(sop_class, sop_uid, DOES_NOT_MATCH)
    visible = workflow.visible(subject)
    accession = str(ds.get("AccessionNumber", "") or "").strip()
    order = repo.order_with_accession(db, accession) if accession else None
    existing = repo.instance_with_uid(db, sop_uid)
    owner = kit.get(db, ImagingStudy, existing.study_id) if existing else None
    foreign_order = order is not None and not repo.order_is_visible(db, visible, order.id)
    foreign_file = owner is not None and (owner.order_id is None or not repo.order_is_visible(db, visible, owner.order_id))
    if foreign_order or foreign_file:
        _apart(db, subject, data, sop_uid, accession)
        return Stored(sop_class, sop_uid)
    path = instance_path(imaging.storage_dir(), suid, sop_uid)
    try:
        imaging.write_file(path, data)
    except OSError:
        log.exception("STOW-RS instance %s could not be written", sop_uid)
        return Stored(sop_class, sop_uid, OUT_OF_RESOURCES)
    done = ingest.ingest_dicom(db, ds, path, calling_ae=f"stow:{subject.username}")
    if done.status != "stored":
        return Stored(sop_class, sop_uid)
    study = kit.get(db, ImagingStudy, done.study_id)
    url = f"{base}{BASE}/studies/{suid}/series/{ds.get('SeriesInstanceUID', '')}/instances/{sop_uid}" \
        if study is not None else None
    return Stored(sop_class, sop_uid, url=url)


def _failed_json(db: Session, subject: Subject, data: stowjson.Made) -> Stored:
    """An instance of a metadata-and-bulk-data request that could not be made into DICOM: kept for a person."""
    _reject(db, subject, data.source, ValueError(data.reason))
    return Stored(_uid(data.sop_class), _uid(data.sop_uid), data.failure)


def store(db: Session, subject: Subject, body: bytes, content_type: str, base: str,
          study_uid: str | None = None) -> tuple[int, dict[str, Any]]:
    """STOW-RS: (HTTP status, the store response). 200 all stored; 202 some failed; 409 none stored."""
    if study_uid is not None:
        check_uid(study_uid, "study")
    kind, params = media_params(content_type)
    request_type = params.get("type", "application/dicom").lower()
    if kind == "multipart/related" and request_type not in ("application/dicom", DICOM_JSON):
        raise UnsupportedMediaType("只接受 multipart/related; type=\"application/dicom\" 或 \"application/dicom+json\"")
    parts = multipart_parts(body, content_type)
    results = []
    if request_type == DICOM_JSON:
        for one in stowjson.instances([(*media_params(h.get("content-type", "")), h, d) for h, d in parts]):
            results.append(store_one(db, subject, one.part10, base, study_uid) if one.failure is None
                           else _failed_json(db, subject, one))
    for headers, data in parts if request_type != DICOM_JSON else []:
        part_type = media_params(headers.get("content-type", "application/dicom"))[0]
        if part_type not in ("application/dicom", "application/octet-stream"):
            results.append(Stored(None, None, CANNOT_UNDERSTAND))
            continue
        results.append(store_one(db, subject, data, base, study_uid))
    if not results:
        raise InvalidInput(fields={"body": "请求中没有实例的元数据 (no metadata part)"})
    ok = [r for r in results if r.failure is None]
    failed = [r for r in results if r.failure is not None]
    answer: dict[str, Any] = {}
    if study_uid is not None:
        answer["00081190"] = element("UR", f"{base}{BASE}/studies/{study_uid}")
    if ok:
        answer["00081199"] = {"vr": "SQ", "Value": [
            {"00081150": element("UI", r.sop_class), "00081155": element("UI", r.sop_uid),
             **({"00081190": element("UR", r.url)} if r.url else {})} for r in ok]}
    if failed:
        answer["00081198"] = {"vr": "SQ", "Value": [
            {"00081150": element("UI", r.sop_class), "00081155": element("UI", r.sop_uid),
             "00081197": element("US", r.failure)} for r in failed]}
    audit.record(db, subject, "diagnostics.dicom_upload", "imaging_study", None,
                 detail={"stored": len(ok), "failed": len(failed)})
    return (200 if not failed else 202 if ok else 409), answer


# ------------------------------------------------------------------------------ OHIF


def ohif_installed() -> bool:
    """Whether `make ohif` put the viewer's files where the app serves them (diagnostics/dicomweb/ohif.py)."""
    return (get_settings().ohif_dir / "index.html").is_file()


def ohif_url(db: Session, order: DiagnosticOrder) -> str | None:
    """The OHIF viewer on the order's studies (access to the order already checked), when OHIF is installed."""
    if order.kind != "imaging" or not ohif_installed():
        return None
    uids = [s.study_instance_uid for s in repo.studies_of_order(db, order.id)]
    return f"/ohif/viewer?StudyInstanceUIDs={','.join(uids)}" if uids else None

