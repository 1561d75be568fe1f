"""Critical values (危急值): pushed to the ordering doctor at once, acknowledged, escalated otherwise.

A lab observation flagged HH / LL / AA (HL7 OBX-8) or a report the reader marks critical
raises a `CriticalValue`: an urgent in-app notification to the ordering doctor (and the
ordering site) plus an outbox message `diagnostics.critical_value` that SMS/WeChat
channels can handle. When nobody acknowledges within `critical_value_escalate_minutes`
(default 10), the periodic job escalates to the ordering department's head.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from yilianti.alliance.repository import institution_names
from yilianti.audit import service as audit
from yilianti.auth.repository import display_names
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.diagnostics import repository as repo
from yilianti.exceptions import Conflict, Forbidden, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.auth import User
from yilianti.models.diagnostics import CriticalValue, DiagnosticOrder, DiagnosticReport, LabObservation
from yilianti.models.patient import Patient
from yilianti.models.workforce import Practitioner
from yilianti.notifications.service import notify
from yilianti.worker.outbox import enqueue

CRITICAL_FLAGS = frozenset({"HH", "LL", "AA"})


def is_critical_flag(flags: str | None) -> bool:
    if not flags:
        return False
    return any(f.strip().upper() in CRITICAL_FLAGS for f in flags.replace("~", "^").split("^"))


def _raise(db: Session, order: DiagnosticOrder, *, source: str, value_text: str,
           observation_id: int | None = None, report_id: int | None = None) -> CriticalValue:
    now = clock.now()
    cv = CriticalValue(order_id=order.id, patient_id=order.patient_id, observation_id=observation_id,
                       report_id=report_id, source=source, value_text=value_text[:300],
                       notified_to_user_id=order.ordering_user_id, notified_at=now)
    db.add(cv)
    db.flush()
    patient = kit.get(db, Patient, order.patient_id)
    title = f"危急值：{patient.name if patient else ''} {order.item_name} {value_text}"[:200]
    notify(db, title=title, body="请立即处理并确认", link="/diagnostics/critical", user_id=order.ordering_user_id,
           institution_id=order.ordering_institution_id, kind="critical", urgent=True,
           dedupe_key=f"critical-{cv.id}")
    enqueue(db, "diagnostics.critical_value",
            {"critical_value_id": cv.id, "order_id": order.id, "accession_number": order.accession_number,
             "user_id": order.ordering_user_id, "institution_id": order.ordering_institution_id,
             "value": cv.value_text}, dedupe_key=f"critical-out-{cv.id}")
    audit.record(db, None, "diagnostics.critical_value", "critical_value", cv.id, patient_id=order.patient_id,
                 channel="system", detail={"order_id": order.id, "source": source, "value": cv.value_text})
    return cv


def raise_for_observation(db: Session, order: DiagnosticOrder, obs: LabObservation) -> CriticalValue:
    text = f"{obs.name or obs.code} {obs.value or ''} {obs.units or ''} ({obs.abnormal_flags})".strip()
    return _raise(db, order, source="hl7", value_text=text, observation_id=obs.id)


def raise_for_report(db: Session, order: DiagnosticOrder, report: DiagnosticReport) -> CriticalValue | None:
    if repo.critical_value_of_report(db, report.id) is not None:
        return None
    return _raise(db, order, source="reader", value_text=report.conclusion or "报告危急值", report_id=report.id)


def acknowledge(db: Session, subject: Subject, cv_id: int, note: str | None = None) -> CriticalValue:
    cv = repo.lock_critical_value(db, cv_id)
    if cv is None or not subject.is_clinical:
        raise NotFound()
    order = kit.get(db, DiagnosticOrder, cv.order_id)
    assert order is not None
    inst = subject.acting_institution_id
    # visible (list_for: the ordering or the reading institution, the patient readable) but not one's to
    # acknowledge: 403; invisible: 404, as if it did not exist
    if inst not in (order.ordering_institution_id, order.reading_centre_institution_id) \
            or policy.decide(db, subject, cv.patient_id) is None:
        raise NotFound()
    if inst != order.ordering_institution_id:
        raise Forbidden("危急值由开单机构的临床人员确认")
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden("只有临床人员可以确认危急值")
    if cv.acknowledged_at is not None:
        raise Conflict("该危急值已确认", code="critical_already_acknowledged")
    cv.acknowledged_by_user_id, cv.acknowledged_at = subject.user_id, clock.now()
    cv.acknowledge_note = (note or "").strip()[:300] or None
    audit.record(db, subject, "diagnostics.critical_ack", "critical_value", cv.id,
                 patient_id=cv.patient_id, detail={"order_id": cv.order_id,
                                                   "minutes": int((cv.acknowledged_at - cv.notified_at).total_seconds() // 60)})
    db.flush()
    return cv


def _head_for(db: Session, order: DiagnosticOrder) -> User | None:
    department_id = order.ordering_department_id
    if department_id is None and order.ordering_practitioner_id:
        doctor = kit.get(db, Practitioner, order.ordering_practitioner_id)
        department_id = doctor.department_id if doctor else None
    # the head above the doctor, not the doctor again: of the doctor's department, else of any
    head = None
    if department_id is not None:
        head = repo.department_head(db, order.ordering_institution_id, department_id=department_id,
                                    not_practitioner=order.ordering_practitioner_id)
    return head or repo.department_head(db, order.ordering_institution_id,
                                        not_practitioner=order.ordering_practitioner_id)


def escalate_overdue(db: Session) -> int:
    """Escalate every critical value unacknowledged for longer than the setting. Returns how many."""
    limit = clock.now() - timedelta(minutes=get_settings().critical_value_escalate_minutes)
    due = repo.unacknowledged_critical_values(db, limit)
    for cv in due:
        order = kit.get(db, DiagnosticOrder, cv.order_id)
        assert order is not None
        head = _head_for(db, order)
        cv.escalated_at = clock.now()
        cv.escalated_to_user_id = head.id if head else None
        notify(db, title=f"危急值超时未确认：{order.item_name}（{order.accession_number}）{cv.value_text}"[:200],
               body="已超过时限未确认，请科主任督办", link="/diagnostics/critical",
               user_id=head.id if head else None, institution_id=order.ordering_institution_id,
               kind="critical", urgent=True, dedupe_key=f"critical-esc-{cv.id}")
        audit.record(db, None, "diagnostics.critical_escalated", "critical_value", cv.id, patient_id=cv.patient_id,
                     channel="system", detail={"to_user_id": cv.escalated_to_user_id})
    db.flush()
    return len(due)


@dataclass
class CriticalRow:
    cv: CriticalValue
    order: DiagnosticOrder
    patient_name: str
    notified_to: str | None
    acknowledged_by: str | None
    escalated_to: str | None
    ordering_name: str
    can_acknowledge: bool


def list_for(db: Session, subject: Subject, *, open_only: bool = True, limit: int | None = None) -> list[CriticalRow]:
    """Critical values of orders the subject's institution placed or reads."""
    if not subject.is_clinical:
        raise NotFound()
    inst = subject.acting_institution_id
    rows = repo.critical_values_at(db, inst, policy.readable(subject), open_only=open_only, limit=limit)
    ids = {u for cv, _o, _n in rows for u in (cv.notified_to_user_id, cv.acknowledged_by_user_id,
                                              cv.escalated_to_user_id) if u}
    users = display_names(db, ids)
    names = institution_names(db, {order.ordering_institution_id for _cv, order, _n in rows})
    return [CriticalRow(cv, order, name, users.get(cv.notified_to_user_id or 0), users.get(cv.acknowledged_by_user_id or 0),
                        users.get(cv.escalated_to_user_id or 0), names.get(order.ordering_institution_id, ""),
                        cv.acknowledged_at is None and inst == order.ordering_institution_id
                        and subject.has("doctor", "nurse", "coordinator"))
            for cv, order, name in rows]
