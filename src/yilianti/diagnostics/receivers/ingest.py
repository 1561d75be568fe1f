"""Ingest of results and images for shared diagnostic centres (CONTRACTS.md "HL7 v2 ORU^R01 mapping", "DICOM").

Pure, synchronous functions over a Session: the receivers call them inside one transaction per
message (see `ingest_hl7` / `ingest_dicom`) and commit. Nothing received is silently dropped:
every message or instance leaves an `InboundMessage` (stored | quarantined | rejected).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import hl7
from sqlalchemy.orm import Session, sessionmaker

from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.diagnostics import repository as repo
from yilianti.diagnostics.dicomweb import document
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.reading import critical
from yilianti.diagnostics.receivers import mllp
from yilianti.diagnostics.receivers.hl7_rules import RULES, Hl7Problem, kept_as, reason_text
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.diagnostics import (
    DiagnosticOrder,
    ImagingInstance,
    ImagingStudy,
    InboundMessage,
    LabObservation,
)
from yilianti.models.patient import Patient
from yilianti.ops import metrics
from yilianti.patients import repository as patients_repo

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- HL7 v2


@dataclass
class Hl7Outcome:
    code: str  # AA | AE | AR
    reason: str | None
    control_id: str
    sending_app: str
    sending_facility: str
    version: str
    inbound_id: int | None = None
    error_code: str | None = None  # HL7 table 0357: 204 unknown key identifier, 100 segment sequence, ...
    charset: str = ""  # MSH-18 as sent, echoed in the ACK (which is encoded in it)
    problem: Hl7Problem | None = None

    def refuse(self, problem: Hl7Problem, detail: str = "") -> Hl7Outcome:
        """AE or AR, as hl7_rules.RULES says for the problem."""
        rule = RULES[problem]
        self.code, self.reason, self.error_code, self.problem = rule.ack, reason_text(problem, detail), \
            rule.error_code, problem
        return self


def normalise_segments(text: str) -> str:
    """Accept `\\r`, `\\n` and `\\r\\n` segment separators; HL7 wants `\\r`."""
    lines = [ln for ln in re.split(r"\r\n|\r|\n", text.strip("\x0b\x1c\r\n ")) if ln.strip()]
    return "\r".join(lines)


def _field(seg: Any, n: int) -> str:
    try:
        return str(seg[n]) if len(seg) > n else ""
    except (IndexError, KeyError):
        return ""


def _component(value: str, n: int, sep: str = "^") -> str:
    parts = value.split(sep)
    return parts[n] if len(parts) > n else ""


def _hl7_ts(value: str) -> datetime | None:
    digits = re.sub(r"[^0-9]", "", value.split("+")[0].split("-")[0])[:14]
    for fmt, size in (("%Y%m%d%H%M%S", 14), ("%Y%m%d%H%M", 12), ("%Y%m%d", 8)):
        if len(digits) >= size:
            try:
                local = datetime.strptime(digits[:size], fmt)
            except ValueError:
                return None
            return clock.as_utc(local.replace(tzinfo=clock.SHANGHAI))  # sender local time (Beijing)
    return None


def _identifiers(pid3: str, rep: str = "~", comp: str = "^") -> list[tuple[str, str]]:
    out = []
    for one in pid3.split(rep):
        value = _component(one, 0, comp).strip()
        if value:
            out.append((_component(one, 3, comp).split("&")[0].strip(), value))
    return out


def _patient_matches(db: Session, patient_id: int, pid3: list[tuple[str, str]], name: str) -> bool:
    """PID-3 identifiers must meet the order's patient; without identifiers the PID-5 name must."""
    if pid3:
        known = patients_repo.identifier_pairs(db, patient_id)
        for authority, value in pid3:
            for k_auth, k_value in known:
                if value == k_value and (not authority or authority == k_auth):
                    return True
        return False
    if name:
        patient = kit.get(db, Patient, patient_id)
        return patient is not None and patient.name == name
    return True


def suggest_patient(db: Session, identifiers: list[tuple[str, str]]) -> int | None:
    """EMPI-ish: the one patient whose identifier matches exactly (value, and issuer when given)."""
    found: set[int] = set()
    for authority, value in identifiers:
        found.update(patients_repo.holders_of(db, value.strip().upper(), authority))
    return found.pop() if len(found) == 1 else None


def _msh_origin(raw: str | None) -> tuple[str, str]:
    """MSH-3 and MSH-4 (sending application, facility) of a stored message's text."""
    parts = (raw or "").split("\r", 1)[0].split("|")
    return (parts[2] if len(parts) > 2 else "", parts[3] if len(parts) > 3 else "")


def ingest_hl7(db: Session, raw: str | mllp.Frame, *, sender: str | None = None,
               order_override: DiagnosticOrder | None = None,
               inbound_override: InboundMessage | None = None) -> Hl7Outcome:
    """Parse one ORU^R01 and store it (or quarantine / reject it). Flushes; the caller commits.

    `raw`: the received frame (mllp.decode: its bytes, text and character set, or why it has no
    text), or text handed over directly (screened the same way).
    `order_override` / `inbound_override`: a person resolving a quarantined message attaches it
    to an order; the OBR accession number and the patient check are then not used.
    """
    frame = raw if isinstance(raw, mllp.Frame) else mllp.Frame.of_text(raw)
    if frame.problem is not None:
        return refuse_frame(db, frame, sender, inbound_override)
    assert frame.text is not None
    text = normalise_segments(frame.text)
    try:
        if not text.startswith("MSH"):
            raise ValueError("no MSH segment")
        msg = hl7.parse(text)
        msh = msg.segment("MSH")
    except Exception as exc:  # noqa: BLE001 - anything unparseable is an AR
        return refuse_frame(db, replace(frame, problem=Hl7Problem.unparseable, detail=str(exc)[:200]), sender,
                            inbound_override)

    control_id = _field(msh, 10)
    outcome = Hl7Outcome("AA", None, control_id, _field(msh, 3), _field(msh, 4), _field(msh, 12) or "2.5.1",
                         charset=frame.charset)
    msg_type = _field(msh, 9)
    inbound = inbound_override or InboundMessage(
        channel="hl7", raw=text, control_id=control_id[:64] or None,
        sender=(sender or f"{outcome.sending_app}@{outcome.sending_facility}")[:100], status="stored")
    if inbound_override is not None:
        inbound.status, inbound.reason, inbound.reason_code, inbound.raw = "stored", None, None, text
        inbound.control_id = control_id[:64] or None

    def reject(problem: Hl7Problem, detail: str = "") -> Hl7Outcome:
        outcome.refuse(problem, detail)
        inbound.status, inbound.reason, inbound.reason_code = kept_as(problem), outcome.reason, str(problem)
        if RULES[problem].ack == "AR" and frame.raw:
            inbound.raw_bytes = frame.raw  # AR: what arrived, byte for byte, for re-processing
        db.add(inbound)
        db.flush()
        outcome.inbound_id = inbound.id
        return outcome

    if not msg_type.startswith("ORU"):
        return reject(Hl7Problem.unsupported_type, msg_type)
    if order_override is None and control_id:
        # An interface engine resends a message whose ACK it did not get: acknowledge it again,
        # store nothing twice, and keep the resend on record.
        # same MSH-10 from the same sending application and facility (MSH-3/4; the TCP peer
        # changes with every connection)
        origin = (outcome.sending_app, outcome.sending_facility)
        first = next((m for m in repo.earlier_hl7_with_control_id(db, control_id[:64], inbound.id)  # not itself
                      if _msh_origin(m.raw) == origin), None)
        if first is not None:
            inbound.status, inbound.reason, inbound.order_id = "duplicate", f"重发的消息，已于 #{first.id} 接收", first.order_id
            inbound.accession_number = first.accession_number
            db.add(inbound)
            db.flush()
            outcome.inbound_id = inbound.id
            return outcome
    if not _has(msg, "OBR"):
        return reject(Hl7Problem.no_obr)
    pid = msg.segments("PID")[0] if _has(msg, "PID") else None
    pid3 = _identifiers(_field(pid, 3)) if pid is not None else []
    pid_name = _component(_field(pid, 5), 0) if pid is not None else ""
    # Chinese names are usually sent whole in PID-5.1; western senders split family^given
    if pid is not None and _component(_field(pid, 5), 1) and not re.search(r"[\u4e00-\u9fff]", pid_name):
        pid_name = f"{pid_name} {_component(_field(pid, 5), 1)}"
    if pid3:
        inbound.issuer = pid3[0][0][:64] or None
        inbound.patient_identifier = pid3[0][1][:64]

    stored = 0
    orders: dict[int, DiagnosticOrder] = {}
    observations: dict[int, list[LabObservation]] = {}
    current: DiagnosticOrder | None = None
    for seg in msg:
        kind = str(seg[0])
        if kind == "OBR":
            accession = _component(_field(seg, 2), 0).strip()
            if order_override is None:
                inbound.accession_number = accession[:32] or None
            order = order_override or (repo.order_with_accession(db, accession) if accession else None)
            if order is None:
                inbound.suggested_patient_id = suggest_patient(db, pid3)
                return reject(Hl7Problem.unknown_accession, accession or "(空)")
            if order_override is None and not _patient_matches(db, order.patient_id, pid3, pid_name):
                inbound.suggested_patient_id = suggest_patient(db, pid3)
                return reject(Hl7Problem.patient_mismatch, accession)
            filler = _component(_field(seg, 3), 0).strip()
            if filler:
                order.filler_order_number = filler[:64]
            orders[order.id] = order
            current = order
            inbound.order_id = order.id
        elif kind == "OBX":
            if current is None:
                return reject(Hl7Problem.segment_order)
            code3 = _field(seg, 3)
            set_id = _field(seg, 1)
            obs = LabObservation(
                order_id=current.id, set_id=int(set_id) if set_id.isdigit() else None,
                value_type=_field(seg, 2)[:8] or None,
                code=_component(code3, 0)[:64] or "?", name=_component(code3, 1)[:200] or None,
                code_system=_component(code3, 2)[:32] or None, value=_field(seg, 5) or None,
                units=_component(_field(seg, 6), 0)[:64] or None, reference_range=_field(seg, 7)[:64] or None,
                abnormal_flags=_field(seg, 8)[:16] or None, result_status=_field(seg, 11)[:4] or None,
                observed_at=_hl7_ts(_field(seg, 14)),
            )
            db.add(obs)
            observations.setdefault(current.id, []).append(obs)
            stored += 1
    if not orders:
        return reject(Hl7Problem.no_obr)
    db.add(inbound)
    db.flush()
    for order in orders.values():
        obs_list = observations.get(order.id, [])
        for obs in obs_list:
            obs.inbound_message_id = inbound.id
        if obs_list and all((o.result_status or "").upper() == "F" for o in obs_list):
            workflow.system_final(db, order, channel="hl7")
        else:
            workflow.system_received(db, order, channel="hl7")
        for obs in obs_list:
            if critical.is_critical_flag(obs.abnormal_flags):
                critical.raise_for_observation(db, order, obs)
        audit.record(db, None, "diagnostics.result_received", "diagnostic_order", order.id,
                     patient_id=order.patient_id, channel="hl7", username=outcome.sending_app or None,
                     detail={"accession_number": order.accession_number, "control_id": control_id,
                             "observations": stored, "inbound_message_id": inbound.id})
    db.flush()
    outcome.inbound_id = inbound.id
    return outcome


def _has(msg: Any, name: str) -> bool:
    try:
        msg.segments(name)
        return True
    except KeyError:
        return False


def _escape(text: str) -> str:
    return (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
            .replace("~", "\\R\\").replace("&", "\\T\\"))


def build_ack(outcome: Hl7Outcome, *, app: str = "YILIANTI", facility: str = "YILIANTI") -> str:
    """ACK^R01: MSA-1 AA / AE / AR with the message's control ID; ERR-3 the HL7 table 0357 code and the
    reason; MSH-18 the message's own character set (the receiver encodes the ACK in it). Counted for /metrics."""
    metrics.HL7_MESSAGES.labels(outcome.code).inc()
    now = clock.now().strftime("%Y%m%d%H%M%S")
    ack_id = f"ACK{clock.now().strftime('%Y%m%d%H%M%S%f')}"[:20]
    segments = [
        f"MSH|^~\\&|{app}|{facility}|{_escape(outcome.sending_app)}|{_escape(outcome.sending_facility)}|{now}||"
        f"ACK^R01^ACK|{ack_id}|P|{_escape(outcome.version)}" + (f"||||||{_escape(outcome.charset)}"
                                                                  if outcome.charset else ""),
        f"MSA|{outcome.code}|{_escape(outcome.control_id)}" + (f"|{_escape(outcome.reason)}" if outcome.reason else ""),
    ]
    if outcome.code != "AA":
        segments.append(f"ERR|||{outcome.error_code or '207'}^{_escape(outcome.reason or '')}^HL70357|E")
    return "\r".join(segments) + "\r"


def _printable(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", "", text)


def _header(frame: mllp.Frame) -> Hl7Outcome:
    """MSH-3/4/10/12 of a frame that may not parse (for the ACK and the kept row)."""
    fields = [_printable(f.decode(frame.codec, errors="replace")) for f in (mllp.msh_fields(frame.raw) or [])]
    if not fields and frame.text and len(frame.text) > 3 and frame.text.startswith("MSH"):
        fields = [_printable(f) for f in frame.text.split("\r", 1)[0].split("\n", 1)[0].split(frame.text[3])]
        fields[1:1] = [frame.text[3]]

    def f(n: int) -> str:
        return fields[n] if len(fields) > n else ""

    return Hl7Outcome("AA", None, f(10), f(3), f(4), f(12)[:16] or "2.5.1", charset=frame.charset)


def refuse_frame(db: Session, frame: mllp.Frame, sender: str | None,
                 inbound_override: InboundMessage | None = None) -> Hl7Outcome:
    """A message refused as it is (AR, hl7_rules): kept with its bytes in the quarantine. Flushes."""
    assert frame.problem is not None
    outcome = _header(frame).refuse(frame.problem, frame.detail)
    inbound = inbound_override or InboundMessage(channel="hl7")
    inbound.status, inbound.reason, inbound.reason_code = kept_as(frame.problem), outcome.reason, str(frame.problem)
    inbound.raw = frame.text if frame.problem is not Hl7Problem.store_failed else None
    inbound.raw_bytes = frame.raw or (frame.text or "").encode("utf-8")
    inbound.control_id = outcome.control_id[:64] or None
    inbound.sender = inbound.sender or (sender or f"{outcome.sending_app}@{outcome.sending_facility}")[:100]
    db.add(inbound)
    db.flush()
    outcome.inbound_id = inbound.id
    return outcome


def process_hl7(factory: Callable[[], Session] | sessionmaker[Session], raw: str | mllp.Frame,
                sender: str | None = None) -> str:
    """One message, one transaction; returns the ACK text.

    Content the database refuses (a failure while storing) is kept as bytes in the quarantine and
    answered AR; only when even that cannot be written is the answer AE "resend" (hl7_rules)."""
    frame = raw if isinstance(raw, mllp.Frame) else mllp.Frame.of_text(raw)
    with factory() as db:
        try:
            outcome = ingest_hl7(db, frame, sender=sender)
            db.commit()
        except Exception as exc:  # noqa: BLE001 - every message gets an answer
            db.rollback()
            log.exception("HL7 message could not be stored")
            failed = replace(frame, text=None, problem=Hl7Problem.store_failed, detail=type(exc).__name__,
                             raw=frame.raw or (frame.text or "").encode("utf-8"))
            try:
                outcome = refuse_frame(db, failed, sender)
                db.commit()
            except Exception:  # noqa: BLE001 - the database is unreachable: nothing could be kept
                db.rollback()
                log.exception("HL7 message could not be kept in the quarantine either")
                outcome = _header(frame).refuse(Hl7Problem.unavailable)
    return build_ack(outcome)


# ---------------------------------------------------------------- DICOM


@dataclass
class DicomOutcome:
    status: str  # stored | quarantined
    path: Path
    inbound_id: int
    study_id: int | None = None


def _dicom_date(value: str | None) -> date | None:
    if not value or len(value) < 8:
        return None
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return None


def ingest_dicom(db: Session, ds: Any, path: Path, *, calling_ae: str | None = None,
                 order_override: DiagnosticOrder | None = None,
                 inbound_override: InboundMessage | None = None) -> DicomOutcome:
    """Link one saved instance (already written to `path`) to its order, or quarantine it. Flushes."""
    accession = str(ds.get("AccessionNumber", "") or "").strip()
    study_uid = str(ds.get("StudyInstanceUID", "") or "")
    sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    order = repo.order_with_accession(db, accession) if accession else None
    if order_override is not None:
        order = order_override
    patient_identifier = str(ds.get("PatientID", "") or "").strip()
    issuer = str(ds.get("IssuerOfPatientID", "") or "").strip()
    inbound = inbound_override or InboundMessage(
        channel="dicom", path=str(path), control_id=sop_uid[:64] or None, accession_number=accession[:32] or None,
        sender=(calling_ae or "")[:100] or None, status="stored")
    inbound.patient_identifier, inbound.issuer = patient_identifier[:64] or None, issuer[:64] or None
    if inbound_override is not None:
        inbound.status, inbound.reason = "stored", None
    if order is None:
        inbound.status = "quarantined"
        inbound.reason = f"未知的检查号 {accession or '(空)'} (unknown accession number)"
        inbound.suggested_patient_id = suggest_patient(db, [(issuer, patient_identifier)]) \
            if patient_identifier else None
        db.add(inbound)
        db.flush()
        return DicomOutcome("quarantined", path, inbound.id)
    inbound.order_id = order.id
    study = repo.study_with_uid(db, study_uid)
    if study is None:
        study = ImagingStudy(
            order_id=order.id, study_instance_uid=study_uid, accession_number=order.accession_number,
            patient_identifier=str(ds.get("PatientID", "") or "")[:64] or None,
            issuer=str(ds.get("IssuerOfPatientID", "") or "")[:64] or None,
            modality=str(ds.get("Modality", "") or "")[:16] or None,
            study_date=_dicom_date(str(ds.get("StudyDate", "") or "")),
            description=str(ds.get("StudyDescription", "") or "")[:200] or None,
            received_at=clock.now(), instance_count=0)
        db.add(study)
        db.flush()
    instance = repo.instance_with_uid(db, sop_uid)
    if instance is None:
        number = ds.get("InstanceNumber")
        instance = ImagingInstance(
            study_id=study.id, sop_instance_uid=sop_uid, sop_class_uid=str(ds.get("SOPClassUID", "") or "") or None,
            series_instance_uid=str(ds.get("SeriesInstanceUID", "") or "") or None,
            instance_number=int(number) if number not in (None, "") else None,
            path=str(path), size_bytes=path.stat().st_size if path.exists() else None)
        db.add(instance)
        study.instance_count += 1
        db.flush()
    else:  # resent: the file was overwritten in place
        instance.path = str(path)
    _keep_metadata(db, instance.id, ds)
    workflow.system_received(db, order, channel="dicom")
    db.add(inbound)
    db.flush()
    audit.record(db, None, "diagnostics.image_received", "imaging_study", study.id, patient_id=order.patient_id,
                 channel="dicom", username=calling_ae or None,
                 detail={"accession_number": accession, "sop_instance_uid": sop_uid})
    return DicomOutcome("stored", path, inbound.id, study.id)


def _keep_metadata(db: Session, instance_id: int, ds: Any) -> None:
    """The instance's WADO-RS metadata document, made from the data set in hand (dicomweb/document.py); a data
    set it cannot be made of is stored all the same (the first read makes it from the file, or says why not)."""
    try:
        text = document.document(ds)
    except Exception as exc:  # noqa: BLE001 - a malformed attribute must not lose the instance
        log.warning("metadata of instance %s not made at ingest: %s", instance_id, exc)
        return
    repo.save_metadata_document(db, instance_id, text)


# ---------------------------------------------------------------- quarantine


def list_quarantine(db: Session, channel: str | None = None, limit: int = 200) -> list[InboundMessage]:
    """What a person must resolve: quarantined and rejected inbound messages, newest first."""
    return repo.inbound_to_resolve(db, PENDING, channel, limit)


QUARANTINE_ROLES = ("reader", "institution_admin", "system_admin")


def _require_resolver(subject: Subject) -> None:
    if not subject.has(*QUARANTINE_ROLES):
        raise Forbidden("只有阅片中心人员或管理员可以处理隔离消息")


def quarantined(db: Session, subject: Subject, inbound_id: int,
                statuses: tuple[str, ...] = ("quarantined",)) -> InboundMessage:
    _require_resolver(subject)
    inbound = repo.lock_inbound(db, inbound_id)
    if inbound is None:
        raise NotFound()
    if inbound.status not in statuses:
        raise Conflict("该消息已处理", code="inbound_not_quarantined")
    return inbound


INBOUND_STATUS_LABELS = {"stored": "已接收", "quarantined": "待关联检查单（AE）", "rejected": "已拒收待处理（AR）",
                         "resolved": "已处理", "discarded": "已丢弃", "duplicate": "重发"}
PENDING = ("quarantined", "rejected")  # what the quarantine page lists: AE to attach, AR to re-process or discard


def preview(inbound: InboundMessage, charsets: mllp.SenderCharsets, limit: int = 4000) -> str:
    """What arrived, for a person: the kept bytes in the message's character set (control characters and
    bytes not valid there shown as \\xNN), or the stored text."""
    if inbound.raw_bytes:
        frame = mllp.decode(inbound.raw_bytes, charsets)
        text = mllp.Frame(inbound.raw_bytes, codec=frame.codec).preview()
    else:
        text = inbound.raw or ""
    return text.replace("\r", "\n")[:limit]


def reprocess(db: Session, subject: Subject, inbound_id: int, charsets: mllp.SenderCharsets) -> Hl7Outcome:
    """Run a kept HL7 message through the ingest again — its bytes decoded anew, with the senders' character
    sets as now configured (YILIANTI_HL7_CHARSETS). Stored → `resolved`; otherwise it stays in the
    quarantine with the new reason."""
    inbound = quarantined(db, subject, inbound_id, PENDING)
    if inbound.channel != "hl7":
        raise InvalidInput("只有 HL7 消息可以重新处理", code="inbound_not_hl7")
    frame = mllp.decode(inbound.raw_bytes, charsets) if inbound.raw_bytes else mllp.Frame.of_text(inbound.raw or "")
    before = inbound.reason_code or inbound.status
    outcome = ingest_hl7(db, frame, sender=inbound.sender, inbound_override=inbound)
    if inbound.status == "stored":
        inbound.status = "resolved"
        inbound.resolved_by_user_id, inbound.resolved_at = subject.user_id, clock.now()
    order = kit.get(db, DiagnosticOrder, inbound.order_id) if inbound.order_id else None
    audit.record(db, subject, "diagnostics.inbound_reprocessed", "inbound_message", inbound.id,
                 patient_id=order.patient_id if order is not None else None,
                 detail={"before": before, "ack": outcome.code, "reason_code": inbound.reason_code,
                         "status": inbound.status, "charset": frame.charset or frame.codec})
    db.flush()
    return outcome


def candidate_orders(db: Session, subject: Subject, inbound: InboundMessage) -> list[DiagnosticOrder]:
    """Open orders of the suggested patient that the subject's centre reads (one click to attach)."""
    if inbound.suggested_patient_id is None or subject.acting_institution_id is None:
        return []
    return repo.open_orders_of_patient_at_centre(db, inbound.suggested_patient_id, subject.acting_institution_id,
                                                 ("ordered", "acquired", "transmitted", "received", "claimed"))


def resolve(db: Session, subject: Subject, inbound_id: int, order_id: int) -> InboundMessage:
    """Attach a quarantined HL7 message / DICOM instance to an order the subject's centre reads."""
    inbound = quarantined(db, subject, inbound_id)
    order = kit.get(db, DiagnosticOrder, order_id)
    if order is None or order.reading_centre_institution_id != subject.acting_institution_id:
        raise InvalidInput(fields={"order_id": "检查单不存在或不属于本阅片中心"})
    if inbound.channel == "hl7":
        outcome = ingest_hl7(db, inbound.raw or "", order_override=order, inbound_override=inbound)
        if outcome.code != "AA":
            raise InvalidInput(fields={"order_id": outcome.reason or "无法关联"})
    else:
        import pydicom

        path = Path(inbound.path or "")
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - a file that cannot be read cannot be attached
            raise InvalidInput(fields={"order_id": f"无法读取 DICOM 文件: {exc}"}) from None
        ingest_dicom(db, ds, path, order_override=order, inbound_override=inbound)
    inbound.order_id = order.id
    inbound.status = "resolved"
    inbound.resolved_by_user_id, inbound.resolved_at = subject.user_id, clock.now()
    audit.record(db, subject, "diagnostics.inbound_resolved", "inbound_message", inbound.id,
                 patient_id=order.patient_id, detail={"order_id": order.id, "channel": inbound.channel})
    db.flush()
    return inbound


def reject_inbound(db: Session, subject: Subject, inbound_id: int, reason: str) -> InboundMessage:
    """A person discards a kept message (quarantined or refused): it leaves the quarantine, on record."""
    inbound = quarantined(db, subject, inbound_id, PENDING)
    if not reason.strip():
        raise InvalidInput(fields={"reason": "请填写丢弃原因"})
    inbound.status = "discarded"
    inbound.reason = f"{inbound.reason or ''}；人工丢弃：{reason.strip()}"[:2000]
    inbound.resolved_by_user_id, inbound.resolved_at = subject.user_id, clock.now()
    audit.record(db, subject, "diagnostics.inbound_rejected", "inbound_message", inbound.id,
                 reason=reason.strip())
    db.flush()
    return inbound
