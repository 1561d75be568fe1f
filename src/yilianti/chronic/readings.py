"""Home-device readings (家用血压计、血糖仪): a CSV exported from a BP monitor or glucose meter (or its phone app)
is uploaded for the institution's patients under care; each reading is stored once and checked against the
urgent thresholds (`rules.urgent_values`, the visit's own rule), raising an alarm like a visit or lab result.

The file (UTF-8 or GB 18030, as Chinese device software writes it), one measurement per row, the first row
naming the columns (Chinese or English):

    身份证号 resident_id   the patient's resident ID (required)
    测量时间 measured_at   YYYY-MM-DD HH:MM[:SS] or YYYY/MM/DD HH:MM, Beijing time (required)
    收缩压 sbp / 舒张压 dbp   mmHg, both or neither
    血糖 glucose            mmol/L
    设备 device             the device's name or serial (optional)

Every row is checked on its own: good rows are stored, each bad one is reported with its row number and the
reason (unknown resident, not under care here, a bad time or value, nothing measured); a row already uploaded
(same patient, kind and moment) is counted as a repeat, not stored twice.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.chronic import alarms, repository, visit
from yilianti.exceptions import Forbidden, InvalidInput
from yilianti.kit import clock
from yilianti.kit.i18n import code_table
from yilianti.models.chronic import ChronicReading, ChronicRegistration
from yilianti.models.patient import Authority
from yilianti.patients import repository as patients

KINDS = code_table("chronic.reading_kind", {"bp": "血压", "glucose": "血糖"})
COLUMNS = {"身份证号": "resident_id", "resident_id": "resident_id", "测量时间": "measured_at",
           "measured_at": "measured_at", "收缩压": "sbp", "sbp": "sbp", "舒张压": "dbp", "dbp": "dbp",
           "血糖": "glucose", "glucose": "glucose", "设备": "device", "device": "device"}
TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S")
MAX_ROWS = 5000


@dataclass
class Uploaded:
    imported: int = 0
    repeats: int = 0
    alarms: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (row number in the file, field, reason)


def _table(content: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InvalidInput(fields={"file": "无法识别文件编码（应为 UTF-8 或 GB18030）"})
    try:
        return [[c.strip() for c in r] for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    except csv.Error:
        raise InvalidInput(fields={"file": "CSV 格式有误"}) from None


def _moment(text: str) -> datetime | None:
    for fmt in TIME_FORMATS:
        try:
            return clock.as_utc(datetime.strptime(text, fmt).replace(tzinfo=clock.SHANGHAI))
        except ValueError:
            continue
    return None


def _registration(regs: list[ChronicRegistration], glucose: bool) -> ChronicRegistration | None:
    """The registration a reading belongs to: a glucose reading to diabetes, a BP reading to hypertension,
    else the first under care."""
    wanted = "diabetes_t2" if glucose else "hypertension"
    return next((r for r in regs if r.condition == wanted), regs[0] if regs else None)


def upload(db: Session, subject: Subject, content: bytes, *, device: str | None = None) -> Uploaded:
    inst = subject.acting_institution_id
    if inst is None or not subject.has("doctor", "nurse"):
        raise Forbidden("只有本机构的医护人员可以上传设备测量数据")
    table = _table(content)
    if not table:
        raise InvalidInput(fields={"file": "文件是空的"})
    header = [COLUMNS.get(h, COLUMNS.get(h.lower(), "")) for h in table[0]]
    missing = [name for name in ("resident_id", "measured_at") if name not in header]
    if missing or not {"sbp", "glucose"} & set(header):
        raise InvalidInput(fields={"file": "第一行须包含列：身份证号、测量时间，以及收缩压/舒张压或血糖"})
    if len(table) - 1 > MAX_ROWS:
        raise InvalidInput(fields={"file": f"一次最多上传 {MAX_ROWS} 行"})
    out = Uploaded()
    seen: set[tuple[int, str, datetime]] = set()
    per_patient: dict[int, int] = {}
    latest = clock.now() + timedelta(minutes=5)
    for number, cells in enumerate(table[1:], start=2):
        row = {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(header) if name}
        patient = patients.person_with_identifier(db, Authority.resident_id, row["resident_id"].upper())
        if patient is None or policy.decide(db, subject, patient.id) is None:
            out.errors.append((number, "", "未找到该居民，或您无权查看"))
            continue
        regs = repository.registrations_under_care_at(db, patient.id, inst)
        if not regs:
            out.errors.append((number, "", "该居民不在本机构的慢病管理中"))
            continue
        at = _moment(row["measured_at"])
        if at is None or at > latest:
            out.errors.append((number, "", "测量时间应为 YYYY-MM-DD HH:MM，且不晚于现在"))
            continue
        read = visit.read("", {"sbp": row.get("sbp", ""), "dbp": row.get("dbp", ""),
                               "fasting_glucose": row.get("glucose", "")}, {}, None)
        if read.errors:
            name, message = next(iter(read.errors.items()))
            out.errors.append((number, visit.LABELS.get(name, name), message))
            continue
        if (read.sbp is None) != (read.dbp is None) or (read.sbp is not None and read.dbp is not None
                                                        and read.dbp >= read.sbp):
            out.errors.append((number, "", "血压须同时填写收缩压和舒张压，且舒张压低于收缩压"))
            continue
        kinds = [k for k, present in (("bp", read.sbp is not None), ("glucose", read.fasting_glucose is not None))
                 if present]
        if not kinds:
            out.errors.append((number, "", "没有测量值"))
            continue
        for kind in kinds:
            key = (patient.id, kind, at)
            if key in seen or repository.reading_exists(db, *key):
                out.repeats += 1
                continue
            seen.add(key)
            reg = _registration(regs, kind == "glucose")
            assert reg is not None
            reading = ChronicReading(
                patient_id=patient.id, registration_id=reg.id, institution_id=inst, kind=kind,
                sbp=read.sbp if kind == "bp" else None, dbp=read.dbp if kind == "bp" else None,
                glucose=read.fasting_glucose if kind == "glucose" else None, measured_at=at,
                device=(row.get("device") or device or "")[:100] or None, uploaded_by_user_id=subject.user_id)
            db.add(reading)
            db.flush()
            out.imported += 1
            per_patient[patient.id] = per_patient.get(patient.id, 0) + 1
            if alarms.raise_for_reading(db, reading, reg) is not None:
                out.alarms += 1
    for patient_id, count in per_patient.items():
        audit.record(db, subject, "create", "chronic_reading", None, patient_id=patient_id,
                     detail={"readings": count})
    return out
