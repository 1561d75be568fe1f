"""Imaging for the shared reading centre: web upload of DICOM files, pixel data for the browser viewer,
window/level maths and forwarding to Orthanc.

- Upload (`ingest_upload`): several files or a zip, each checked like a C-STORE instance: a DICOM
  Part 10 file with Study/SOP Instance UIDs, written where the C-STORE receiver writes
  (`receivers.dicom.instance_path`) and linked by `ingest.ingest_dicom` (AccessionNumber → order,
  else quarantine). Anything that is not DICOM is kept under `dicom/rejected/` with a `rejected`
  InboundMessage — nothing received is silently dropped.
- Viewer (`frame`): one frame as a compact binary answer — a 4-byte little-endian length, an ASCII
  JSON header (rows, columns, dtype, rescale, default window, spacing, MONOCHROME1 inversion) padded
  to 4 bytes, then the stored pixel values (int16 / uint16 LE, or float32 when they fit neither,
  or rgb8). The browser applies rescale and window/level (web/static/js/viewer.js mirrors
  `window_level` below). Compressed transfer syntaxes are decoded by pydicom's plug-ins: Pillow (JPEG
  baseline/extended, JPEG 2000), pyjpegls / CharLS (JPEG-LS), python-gdcm (JPEG lossless process 14)
  and its own RLE decoder; anything else (MPEG / HEVC video, HTJ2K, …) raises `NotDecodable`, whose
  translated message the viewer shows — the instance itself stays stored and forwarded to the PACS.
- Orthanc (`forward_pending`): when YILIANTI_ORTHANC_URL is set, received instances are POSTed to
  Orthanc's REST API `/instances` by a periodic job; the viewer links to Orthanc's explorer.
"""

from __future__ import annotations

import io
import json
import logging
import math
import struct
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError
from sqlalchemy.orm import Session

from yilianti.audit import repository as audit_repo
from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.diagnostics import repository as repo
from yilianti.diagnostics.receivers import ingest
from yilianti.diagnostics.receivers.dicom import instance_path
from yilianti.exceptions import AppError, Forbidden, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.diagnostics import DiagnosticOrder, ImagingInstance, ImagingStudy, InboundMessage
from yilianti.models.diagnostics_media import OrthancForward
from yilianti.record.sources import order_institutions
from yilianti.worker.runner import periodic

log = logging.getLogger(__name__)

# name → (window width, window center)
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (1500, -600),
    "mediastinum": (350, 50),
    "bone": (2000, 300),
    "brain": (80, 40),
}
PRESET_LABELS = {"lung": "肺窗", "mediastinum": "纵隔窗", "bone": "骨窗", "brain": "脑窗"}

MAX_ZIP_ENTRIES = 5000
MAX_ZIP_BYTES = 2 * 1024 ** 3  # uncompressed total of one zip


class NotDecodable(AppError):
    status, code, default_message = 415, "pixel_data_not_decodable", "该图像的压缩格式无法在浏览器中显示"


# the viewer shows it as is (translated by catalogue); the instance stays stored and is forwarded to the PACS
CANNOT_DISPLAY = "无法在浏览器中显示该压缩格式（传输语法 {syntax}），请在 PACS 中打开"


def storage_dir() -> Path:
    return get_settings().var_dir / "dicom"


# ------------------------------------------------------------------------------ window / level


def window_level(value: float, center: float, width: float) -> int:
    """DICOM PS3.3 C.11.2.1.2.1 linear VOI function: a modality value → display grey 0..255."""
    width = max(width, 1.0)
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    if value <= low:
        return 0
    if value > high:
        return 255
    return int(round(((value - (center - 0.5)) / (width - 1) + 0.5) * 255))


def distance_mm(p1: tuple[float, float], p2: tuple[float, float], spacing: tuple[float, float]) -> float:
    """Distance between two (column, row) image points; `spacing` is PixelSpacing (row, column) in mm."""
    dy = (p2[1] - p1[1]) * spacing[0]
    dx = (p2[0] - p1[0]) * spacing[1]
    return math.hypot(dx, dy)


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and not isinstance(value, str):
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------------------ upload


@dataclass
class UploadResult:
    filename: str
    status: str  # stored | quarantined | rejected
    reason: str | None = None
    sop_instance_uid: str | None = None
    study_id: int | None = None
    inbound_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "status": self.status, "reason": self.reason,
                "sop_instance_uid": self.sop_instance_uid, "study_id": self.study_id,
                "inbound_message_id": self.inbound_id}


@dataclass
class UploadOutcome:
    results: list[UploadResult] = field(default_factory=list)

    @property
    def rejected(self) -> list[UploadResult]:
        return [r for r in self.results if r.status == "rejected"]

    def counts(self) -> dict[str, int]:
        out = {"stored": 0, "quarantined": 0, "rejected": 0}
        for r in self.results:
            out[r.status] += 1
        return out


def expand(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes, str | None]]:
    """Zips are opened (directories and DICOMDIR skipped); a broken or oversized zip is one rejected entry."""
    out: list[tuple[str, bytes, str | None]] = []
    for name, data in files:
        if data[:4] != b"PK\x03\x04" or data[128:132] == b"DICM":
            out.append((name, data, None))
            continue
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
                if len(infos) > MAX_ZIP_ENTRIES or sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
                    out.append((name, data, f"压缩包过大 (zip over {MAX_ZIP_ENTRIES} files or 2 GiB)"))
                    continue
                for info in infos:
                    base = info.filename.rsplit("/", 1)[-1]
                    if base.upper() == "DICOMDIR" or base.startswith("."):
                        continue
                    out.append((f"{name}/{info.filename}", zf.read(info), None))
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as exc:
            out.append((name, data, f"损坏的压缩包 (broken zip): {exc}"))
    return out


def keep_rejected(db: Session, subject: Subject, name: str, data: bytes, reason: str,
                  order: DiagnosticOrder | None) -> UploadResult:
    """What is not DICOM (or not readable) is kept under dicom/rejected/ with a `rejected` InboundMessage."""
    rejected_dir = storage_dir() / "rejected"
    path: Path | None = rejected_dir / f"{clock.now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:12]}.bin"
    try:
        assert path is not None
        rejected_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError:
        log.exception("rejected upload %s could not be kept", name)
        path = None
    inbound = InboundMessage(channel="dicom", status="rejected", path=str(path) if path else None,
                             reason=f"{reason} — {name}"[:2000], sender=f"web:{subject.username}"[:100],
                             accession_number=order.accession_number if order else None,
                             order_id=order.id if order else None)
    db.add(inbound)
    db.flush()
    return UploadResult(name, "rejected", reason, inbound_id=inbound.id)


def ingest_upload(db: Session, subject: Subject, order: DiagnosticOrder,
                  files: list[tuple[str, bytes]]) -> UploadOutcome:
    """Store uploaded files for `order` (access already checked by the caller). Flushes."""
    outcome = UploadOutcome()
    for name, data, problem in expand(files):
        if problem:
            outcome.results.append(keep_rejected(db, subject, name, data, problem, order))
            continue
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
            study_uid = str(ds.StudyInstanceUID)
            sop_uid = str(ds.SOPInstanceUID)
            if not study_uid or not sop_uid:
                raise ValueError("empty UID")
        except InvalidDicomError:
            outcome.results.append(keep_rejected(db, subject, name, data, "不是 DICOM 文件 (not a DICOM Part 10 file)",
                                           order))
            continue
        except Exception as exc:  # noqa: BLE001 - corrupt data set
            outcome.results.append(keep_rejected(db, subject, name, data,
                                           f"无法解析的 DICOM 文件 (undecodable DICOM file): {exc}"[:500], order))
            continue
        accession = str(ds.get("AccessionNumber", "") or "").strip()
        if not accession:  # uploaded on the order's page: the order names it
            ds.AccessionNumber = order.accession_number
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            data = buf.getvalue()
        elif accession != order.accession_number:
            inbound = quarantine_apart(
                db, data, sop_uid, accession, f"web:{subject.username}",
                f"检查号 {accession} 与本申请 {order.accession_number} 不符 (accession does not match the order)")
            outcome.results.append(UploadResult(name, "quarantined", inbound.reason, sop_uid, None, inbound.id))
            continue
        path = instance_path(storage_dir(), study_uid, sop_uid)
        write_file(path, data)
        done = ingest.ingest_dicom(db, ds, path, calling_ae=f"web:{subject.username}")
        outcome.results.append(UploadResult(name, done.status, None, sop_uid, done.study_id, done.inbound_id))
    audit.record(db, subject, "diagnostics.dicom_upload", "diagnostic_order", order.id, patient_id=order.patient_id,
                 detail={"accession_number": order.accession_number, **outcome.counts()})
    db.flush()
    return outcome


def quarantine_apart(db: Session, data: bytes, sop_uid: str, accession: str, sender: str,
                     reason: str) -> InboundMessage:
    """Keep an instance in the quarantine under a path of its own — a stored instance with the same UIDs (maybe
    another order's) must not be overwritten by it — for a person to attach or discard. Flushes."""
    path = storage_dir() / "quarantine" / f"{uuid.uuid4().hex[:12]}-{instance_path(Path(), '', sop_uid).name}"
    write_file(path, data)
    inbound = InboundMessage(channel="dicom", status="quarantined", path=str(path), control_id=sop_uid[:64],
                             accession_number=accession[:32] or None, sender=sender[:100], reason=reason)
    db.add(inbound)
    db.flush()
    return inbound


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)


# ------------------------------------------------------------------------------ viewer data


@dataclass
class Image:
    instance_id: int
    frame: int
    number: int | None


@dataclass
class Series:
    uid: str
    number: int | None
    description: str
    modality: str
    images: list[Image]


def series_of(db: Session, study: ImagingStudy) -> list[Series]:
    """Series of a study, images in InstanceNumber order; a multi-frame instance gives one image per frame."""
    instances = repo.instances_of_study(db, study.id)
    groups: dict[str, list[ImagingInstance]] = {}
    for inst in instances:
        groups.setdefault(inst.series_instance_uid or "", []).append(inst)
    out = []
    for uid, members in groups.items():
        members.sort(key=lambda i: (i.instance_number is None, i.instance_number or 0, i.id))
        description, modality, number = "", study.modality or "", None
        images: list[Image] = []
        for k, inst in enumerate(members):
            frames = 1
            try:
                head = pydicom.dcmread(inst.path, stop_before_pixels=True)
                frames = max(int(head.get("NumberOfFrames", 1) or 1), 1)
                if k == 0:
                    description = str(head.get("SeriesDescription", "") or "")
                    modality = str(head.get("Modality", "") or modality)
                    sn = head.get("SeriesNumber")
                    number = int(sn) if sn not in (None, "") else None
                if "PixelData" not in head and "FloatPixelData" not in head and "WaveformSequence" in head:
                    frames = 0  # a waveform (ECG) has no image
            except Exception:  # noqa: BLE001 - unreadable file: still listed, the frame request explains
                log.warning("instance %s unreadable", inst.id)
            images.extend(Image(inst.id, f, inst.instance_number) for f in range(frames))
        if images:
            out.append(Series(uid, number, description, modality, images))
    out.sort(key=lambda s: (s.number is None, s.number or 0, s.uid))
    return out


def pixels(ds: Any, index: int | None = None) -> Any:
    """Decoded pixels of the whole instance, or of one frame only (`index`) of a multi-frame one."""
    import numpy as np
    from pydicom.pixels import pixel_array

    if "PixelData" not in ds:
        raise NotDecodable("该实例没有图像数据 (no pixel data)")
    try:
        arr = pixel_array(ds, index=index) if index is not None else ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - missing decoder plug-in, corrupt stream
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", "") or ""
        syntax = f"{name} {ts}" if name and name != str(ts) else str(ts)
        log.info("pixel data not decodable (%s): %s", syntax, exc)
        raise NotDecodable(CANNOT_DISPLAY, syntax=syntax) from exc
    return np.asarray(arr)


def frame(path: str, index: int = 0) -> tuple[dict[str, Any], bytes]:
    """Header and raw bytes of one frame (see module docstring)."""
    import numpy as np

    try:
        ds = pydicom.dcmread(path)
    except (OSError, InvalidDicomError) as exc:
        raise NotDecodable(f"无法读取该实例 ({exc})") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if not 0 <= index < frames:
        raise NotDecodable(f"帧号超出范围 (frame {index} of {frames})", status=404)
    arr = pixels(ds, index if frames > 1 else None)  # one frame decoded, not the whole cine
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    header: dict[str, Any] = {
        "rows": int(ds.Rows), "columns": int(ds.Columns), "frames": frames, "frame": index,
        "photometric": photometric, "invert": photometric == "MONOCHROME1",
        "slope": float(ds.get("RescaleSlope", 1) or 1), "intercept": float(ds.get("RescaleIntercept", 0) or 0),
        "instance_number": ds.get("InstanceNumber"), "modality": str(ds.get("Modality", "") or ""),
        "pixel_spacing": None, "slice_location": _first(ds.get("SliceLocation")),
    }
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if spacing is not None and len(spacing) >= 2:
        header["pixel_spacing"] = [float(spacing[0]), float(spacing[1])]
    if spp == 3 or photometric.startswith(("RGB", "YBR")):
        rgb = np.ascontiguousarray(arr.astype(np.uint8) if arr.dtype != np.uint8 else arr)
        header.update(dtype="rgb8", window_center=None, window_width=None, min=0, max=255)
        return header, rgb.tobytes()
    if arr.dtype.kind == "f":
        data = arr.astype("<f4")
        header["dtype"] = "float32"
    else:
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= -32768 and hi <= 32767:
            data, header["dtype"] = arr.astype("<i2"), "int16"
        elif lo >= 0 and hi <= 65535:
            data, header["dtype"] = arr.astype("<u2"), "uint16"
        else:
            data, header["dtype"] = arr.astype("<f4"), "float32"
    stored_min, stored_max = float(arr.min()), float(arr.max())
    vmin = stored_min * header["slope"] + header["intercept"]
    vmax = stored_max * header["slope"] + header["intercept"]
    header["min"], header["max"] = min(vmin, vmax), max(vmin, vmax)
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        center, width = (header["min"] + header["max"]) / 2, max(header["max"] - header["min"], 1.0)
    header["window_center"], header["window_width"] = center, width
    return header, np.ascontiguousarray(data).tobytes()


def pack(header: dict[str, Any], data: bytes) -> bytes:
    text = json.dumps(header, ensure_ascii=True, default=str).encode("ascii")
    text += b" " * (-(len(text) + 4) % 4)
    return struct.pack("<I", len(text)) + text + data


def unpack(body: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack_from("<I", body)
    return json.loads(body[4:4 + n].decode("ascii")), body[4 + n:]


def preview_png(path: str, index: int = 0, center: float | None = None, width: float | None = None,
                size: int | None = None) -> bytes:
    """A PNG rendered with window/level (the report editor's thumbnails; old browsers without canvas)."""
    import numpy as np
    from PIL import Image as PILImage

    header, raw = frame(path, index)
    rows, cols = header["rows"], header["columns"]
    if header["dtype"] == "rgb8":
        img = PILImage.frombytes("RGB", (cols, rows), raw)
    else:
        dtype = {"int16": "<i2", "uint16": "<u2", "float32": "<f4"}[header["dtype"]]
        values = np.frombuffer(raw, dtype=dtype).astype(np.float64) * header["slope"] + header["intercept"]
        c = header["window_center"] if center is None else center
        w = header["window_width"] if width is None else width
        grey = apply_window(values, c, w)
        if header["invert"]:
            grey = 255 - grey
        img = PILImage.frombytes("L", (cols, rows), grey.astype(np.uint8).reshape(rows, cols).tobytes())
    if size:
        img.thumbnail((size, size))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def apply_window(values: Any, center: float, width: float) -> Any:
    """Vectorised `window_level` (same formula) over a numpy array of modality values."""
    import numpy as np

    width = max(float(width), 1.0)
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255 if width > 1 else \
        np.where(values > center - 0.5, 255.0, 0.0)
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    out = np.where(values <= low, 0.0, np.where(values > high, 255.0, np.round(scaled)))
    return np.clip(out, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ Orthanc


def orthanc_link(db: Session, study: ImagingStudy) -> str | None:
    """Orthanc's explorer page for the study, once one of its instances was forwarded."""
    settings = get_settings()
    base = (settings.orthanc_public_url or settings.orthanc_url).rstrip("/")
    if not base:
        return None
    orthanc_study = repo.orthanc_study_of(db, study.id)
    return f"{base}/app/explorer.html#study?uuid={orthanc_study}" if orthanc_study else None


def forward_pending(db: Session, limit: int = 50, max_attempts: int = 5) -> int:
    """POST received instances not yet in Orthanc to its REST API. Returns how many were sent."""
    import httpx

    settings = get_settings()
    base = settings.orthanc_url.rstrip("/")
    if not base:
        return 0
    pending = repo.instances_to_forward(db, max_attempts, limit)
    auth = (settings.orthanc_username, settings.orthanc_password) if settings.orthanc_username else None
    sent = 0
    with httpx.Client(timeout=30.0, auth=auth) as client:
        for inst in pending:
            mark = repo.forward_mark(db, inst.id)
            if mark is None:
                mark = OrthancForward(instance_id=inst.id, status="failed", attempts=0)
                db.add(mark)
            mark.attempts += 1
            try:
                body = Path(inst.path).read_bytes()
                r = client.post(f"{base}/instances", content=body,
                                headers={"Content-Type": "application/dicom"})
                r.raise_for_status()
                answer = r.json()
                mark.status, mark.error = "sent", None
                mark.orthanc_id = str(answer.get("ID", ""))[:64] or None
                mark.orthanc_study_id = str(answer.get("ParentStudy", ""))[:64] or None
                sent += 1
            except (OSError, httpx.HTTPError, ValueError) as exc:
                mark.status, mark.error = "failed", str(exc)[:2000]
                log.warning("instance %s not forwarded to Orthanc: %s", inst.id, exc)
            db.flush()
    return sent


@periodic("diagnostics.orthanc_forward", every_seconds=10)
def _forward_job(db: Session) -> int:
    return forward_pending(db)


# ------------------------------------------------------------------------------ access


UPLOADS = frozenset({"diagnostics.dicom_upload", "diagnostics.ecg_import"})


def order_for(db: Session, subject: Subject, order_id: int, action: str) -> DiagnosticOrder:
    """The order, if the shared record would show its entries to the acting institution (`policy.entry_visible`:
    the ordering site, the reading centre, or a member with the shared record — consent in force, an including
    grant, break-glass); 404 otherwise, so patient-level access alone opens no other member's images or ECG.
    The read is audited (basis `shared` for another member's order). Uploads (`UPLOADS`) are the order's own
    sides' work: 403 for a member that only sees it."""
    order = kit.get(db, DiagnosticOrder, order_id)
    if order is None:
        raise NotFound()
    involved = order_institutions(order)
    policy.require_entry(db, subject, order.patient_id, involved, action=action, resource_type="diagnostic_order",
                         resource_id=order.id)
    if action in UPLOADS and subject.acting_institution_id not in involved:
        raise Forbidden("只有开单机构和诊断中心可以上传")
    return order


def study_for(db: Session, subject: Subject, study_id: int, action: str = "diagnostics.study_view") -> ImagingStudy:
    """A study of an order, by the order's rule (`order_for`); audited on the study."""
    study = kit.get(db, ImagingStudy, study_id)
    order = kit.get(db, DiagnosticOrder, study.order_id) if study and study.order_id else None
    if study is None or order is None:
        raise NotFound()
    policy.require_entry(db, subject, order.patient_id, order_institutions(order), action=action,
                         resource_type="imaging_study", resource_id=study.id)
    return study


FRAME_AUDIT_WINDOW = timedelta(minutes=10)


def instance_for(db: Session, subject: Subject, instance_id: int, frame_no: int) -> ImagingInstance:
    """An image the acting institution may see (404 otherwise).

    Scrolling a 300-slice CT fetches 300 frames; one audit row per frame buried the log. The
    read is audited once per user and study in a ten-minute window (`diagnostics.image_view`
    on the study, with the first frame seen) — the access check still runs on every frame.
    """
    inst = kit.get(db, ImagingInstance, instance_id)
    study = kit.get(db, ImagingStudy, inst.study_id) if inst else None
    order = kit.get(db, DiagnosticOrder, study.order_id) if study and study.order_id else None
    if inst is None or study is None or order is None:
        raise NotFound()
    access, basis = policy.entry_access(db, subject, order.patient_id, order_institutions(order))
    audit_image_view(db, subject, study.id, order.patient_id, basis,
                     {"instance_id": inst.id, "frame": frame_no, "grant_id": access.grant_id})
    return inst


def audit_image_view(db: Session, subject: Subject, study_id: int, patient_id: int, basis: str,
                     detail: dict[str, Any], action: str = "diagnostics.image_view") -> None:
    """Audit a read of a study's images once per user, study and action in FRAME_AUDIT_WINDOW (the browser
    viewer and DICOMweb clients fetch one request per frame; the access check still runs on each)."""
    if not audit_repo.recorded_since(db, clock.now() - FRAME_AUDIT_WINDOW, user_id=subject.user_id,
                                     action=action, resource_type="imaging_study",
                                     resource_id=str(study_id), patient_id=patient_id):
        audit.record(db, subject, action, "imaging_study", study_id, patient_id=patient_id, basis=basis,
                     detail=detail)


def series_json(series: list[Series]) -> list[dict[str, Any]]:
    return [{"uid": s.uid, "number": s.number, "description": s.description, "modality": s.modality,
             "images": [{"instance_id": i.instance_id, "frame": i.frame, "number": i.number} for i in s.images]}
            for s in series]
