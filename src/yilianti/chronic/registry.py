"""The registries (hypertension, type 2 diabetes, severe mental disorders, tuberculosis): enrolment with the ICD-10
code, date, team and risk level (hypertension and diabetes: low … very high; SMI: the national danger grade 0–5),
for TB the notification and the treatment phase; and every later change — status (under care, lost to
follow-up, transferred, deceased, and back under care), risk level, TB phase — as a history row (who, when,
from, to, why).

Leaving care cancels the registration's open follow-up (it no longer counts as due or overdue); coming back plans
one `chronic_recheck_days` later. A death ends the patient's contracts with the institution's teams. A TB
patient's first home visit is due `chronic_tb_first_visit_days` (3) after the notification; an SMI patient of
danger grade 3–5 is seen again within `chronic_recheck_days` (`rules.first_visit_soon`). A TB treatment ends
with the closing assessment (结案评估, `close_tb`): when and why it stopped (the outcome), the visits due and made,
the doses due and taken, regular treatment or not — kept in its own row (`TbClosing`), which the TB outcome
measures count."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.policy import require_patient
from yilianti.authz.subject import Subject
from yilianti.chronic import repository, rules, service, teams, visit
from yilianti.config import get_settings
from yilianti.exceptions import Conflict, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit.i18n import code_table
from yilianti.models.chronic import ChronicFollowUp, ChronicRegistration
from yilianti.models.chronic_registry import ChronicRegistrationEvent, TbClosing

STATUSES = code_table("chronic.registration_status", {"under_care": "在管", "lost": "失访", "transferred": "已转出",
                                                      "deceased": "已死亡"})
RISKS = code_table("chronic.risk", {"low": "低危", "medium": "中危", "high": "高危", "very_high": "很高危"})
SMI_GRADES = code_table("chronic.smi_grade", {str(g): f"{g}级" for g in range(6)})
TB_PHASES = code_table("chronic.tb_phase", {"intensive": "强化期", "continuation": "继续期", "completed": "疗程结束"})
EVENT_KINDS = code_table("chronic.event_kind", {"enrolled": "纳入管理", "status": "管理状态", "risk": "危险分层",
                                               "phase": "治疗阶段"})


def risk_codes(condition: str) -> dict[str, str]:
    """The risk levels a registry uses: SMI's danger grades, none for TB, the four levels otherwise."""
    return {"smi": dict(SMI_GRADES), "tb": {}}.get(condition, dict(RISKS))


def value_label_kind(kind: str, condition: str) -> str | None:
    """The code table of an event's from/to values (for labels on the page)."""
    if kind == "status":
        return "chronic.registration_status"
    if kind == "risk":
        return "chronic.smi_grade" if condition == "smi" else "chronic.risk"
    return "chronic.tb_phase" if kind == "phase" else None


@dataclass
class EnrolIn:
    patient_id: int | None
    condition: str
    icd10: str = ""
    enrolled_on: date | None = None
    team_id: int | None = None
    risk_level: str | None = None
    notified_on: date | None = None
    errors: dict[str, str] = field(default_factory=dict)  # a form's half-typed values, reported with the rest


def _event(db: Session, subject: Subject, reg: ChronicRegistration, kind: str, old: str | None, new: str | None,
           on: date, reason: str | None) -> ChronicRegistrationEvent:
    e = ChronicRegistrationEvent(registration_id=reg.id, kind=kind, from_value=old, to_value=new, effective_on=on,
                                 reason=(reason or "").strip()[:300] or None, user_id=subject.user_id)
    db.add(e)
    db.flush()
    if kind != "enrolled":  # the enrolment itself is audited by service.enrol
        audit.record(db, subject, "update", "chronic_registration", reg.id, patient_id=reg.patient_id,
                     reason=e.reason, detail={kind: {"from": old, "to": new}})
    return e


def enrol(db: Session, subject: Subject, data: EnrolIn) -> ChronicRegistration:
    """Enrol with the registry's own details; the first follow-up is planned by `service.enrol`, earlier for a
    TB notification (home visit in 72 h) and for an SMI patient of danger grade 3–5."""
    today = clock.today_local()
    errors: dict[str, str] = dict(data.errors)
    condition = data.condition
    if condition not in service.CONDITIONS:
        errors["condition"] = "请选择病种"
    icd10 = data.icd10.strip().upper() or service.ICD10.get(condition, "")
    if condition in service.CONDITIONS and service.condition_of(icd10) != condition:
        errors["icd10"] = "ICD-10 编码与病种不符"
    if data.risk_level and data.risk_level not in risk_codes(condition):
        errors["risk_level"] = "危险分层无效"
    day = data.enrolled_on or today
    if day > today:
        errors["enrolled_on"] = "纳入管理日期不能晚于今天"
    notified = data.notified_on or (day if condition == "tb" else None)
    if notified and notified > today:
        errors["notified_on"] = "报告日期不能晚于今天"
    if data.patient_id is None:
        errors["patient_id"] = "请选择患者"
    if errors:
        raise InvalidInput(fields=errors)
    assert data.patient_id is not None
    reg = service.enrol(db, subject, data.patient_id, condition, team_id=data.team_id, enrolled_on=day)
    reg.icd10, reg.risk_level, reg.notified_on = icd10[:16], data.risk_level or None, notified
    reg.tb_phase = "intensive" if condition == "tb" else None
    soon = rules.first_visit_soon(condition, day, notified_on=notified, grade=data.risk_level)
    for task in repository.open_follow_ups_of(db, reg.id):
        if soon is not None and soon < task.due_on:
            task.due_on = soon
    _event(db, subject, reg, "enrolled", None, "under_care", day, None)
    return reg


def require_registration(db: Session, subject: Subject, registration_id: int) -> ChronicRegistration:
    """A registration managed at the acting institution, its patient's read audited; 404 otherwise."""
    reg = repository.registration(db, registration_id)
    if reg is None or reg.institution_id != subject.acting_institution_id or not subject.is_clinical:
        raise NotFound()
    require_patient(db, subject, reg.patient_id, resource_type="chronic_registration", resource_id=reg.id)
    return reg


def _day(on: date | None, reg: ChronicRegistration) -> date:
    today = clock.today_local()
    day = on or today
    if day > today:
        raise InvalidInput(fields={"effective_on": "日期不能晚于今天"})
    if day < reg.enrolled_on:
        raise InvalidInput(fields={"effective_on": "日期不能早于纳入管理日期"})
    return day


def change_status(db: Session, subject: Subject, registration_id: int, status: str, reason: str | None = None,
                  on: date | None = None) -> ChronicRegistration:
    """Move a registration between under care, lost to follow-up, transferred and deceased (see the module)."""
    reg = require_registration(db, subject, registration_id)
    service._require_staff(subject, reg.institution_id)
    if status not in STATUSES:
        raise InvalidInput(fields={"status": "请选择管理状态"})
    if status == reg.status:
        raise Conflict("管理状态没有变化")
    if reg.status == "deceased":
        raise Conflict("已死亡的患者不能变更管理状态")
    if status != "under_care" and not (reason or "").strip():
        raise InvalidInput(fields={"reason": "请说明原因（如失访经过、转至何处）"})
    day = _day(on, reg)
    other = repository.registration_under_care(db, reg.patient_id, reg.condition) if status == "under_care" else None
    if other is not None and other.id != reg.id:
        raise Conflict("该患者已在此病种的管理中")
    old, reg.status = reg.status, status
    if status == "under_care":
        task = ChronicFollowUp(registration_id=reg.id, patient_id=reg.patient_id, institution_id=reg.institution_id,
                               team_id=reg.team_id, due_on=day + timedelta(days=get_settings().chronic_recheck_days),
                               reason="recheck", status="open")
        db.add(task)
    else:
        for task in repository.open_follow_ups_of(db, reg.id):
            task.status = "cancelled"
    db.flush()
    _event(db, subject, reg, "status", old, status, day, reason)
    if status == "deceased":
        for c in repository.patient_contracts_at(db, reg.patient_id, reg.institution_id):
            if c.status == "active":  # a renewal ends with the contract it renews
                teams.terminate(db, subject, c.id, "deceased", reason, day)
    return reg


def set_risk(db: Session, subject: Subject, registration_id: int, level: str, reason: str | None = None,
             on: date | None = None) -> ChronicRegistration:
    """A new risk level or SMI danger grade; an SMI grade of 3–5 brings the open follow-up within two weeks."""
    reg = require_registration(db, subject, registration_id)
    service._require_staff(subject, reg.institution_id)
    if level not in risk_codes(reg.condition):
        raise InvalidInput(fields={"risk_level": "危险分层无效"})
    if level == reg.risk_level:
        raise Conflict("危险分层没有变化")
    day = _day(on, reg)
    old, reg.risk_level = reg.risk_level, level
    if reg.condition == "smi" and int(level) >= rules.SMI_REFER_GRADE:
        soon = day + timedelta(days=get_settings().chronic_recheck_days)
        for task in repository.open_follow_ups_of(db, reg.id):
            task.due_on = min(task.due_on, soon)
    db.flush()
    _event(db, subject, reg, "risk", old, level, day, reason)
    return reg


def set_phase(db: Session, subject: Subject, registration_id: int, phase: str, reason: str | None = None,
              on: date | None = None, *, closing: bool = False) -> ChronicRegistration:
    """A TB patient's treatment phase: intensive → continuation → completed (only by `close_tb`)."""
    reg = require_registration(db, subject, registration_id)
    service._require_staff(subject, reg.institution_id)
    if reg.condition != "tb":
        raise NotFound()
    if phase not in TB_PHASES:
        raise InvalidInput(fields={"tb_phase": "请选择治疗阶段"})
    if phase == "completed" and not closing:
        raise InvalidInput(fields={"tb_phase": "疗程结束须填写结案评估"})
    order = list(TB_PHASES)
    if reg.tb_phase and order.index(phase) <= order.index(reg.tb_phase):
        raise Conflict("治疗阶段只能向前推进")
    day = _day(on, reg)
    old, reg.tb_phase = reg.tb_phase, phase
    _replan_for_phase(db, reg)
    db.flush()
    _event(db, subject, reg, "phase", old, phase, day, reason)
    return reg


def _replan_for_phase(db: Session, reg: ChronicRegistration) -> None:
    """The open follow-up planned after the last visit, re-planned by `rules.next_visit` in the new phase (the
    intensive phase's 10 days become the continuation's month); before a first visit the plan stays."""
    last = repository.last_done(db, reg.id)
    if last is None or last.done_on is None or not last.classification:
        return
    due, why = rules.next_visit(reg.condition, last.classification, last.done_on, tb_phase=reg.tb_phase)
    for task in repository.open_follow_ups_of(db, reg.id):
        task.due_on, task.reason = due, why


@dataclass
class ClosingIn:
    """The closing assessment of a TB treatment (结案评估) as the doctor enters it from the treatment card."""
    stopped_on: date | None
    stop_reason: str
    doses_due: int | None
    doses_taken: int | None
    note: str | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Closing:
    stopped_on: date
    stop_reason: str
    visits_due: int
    visits_done: int
    doses_due: int
    doses_taken: int

    @property
    def dose_rate(self) -> float:
        return self.doses_taken / self.doses_due if self.doses_due else 0.0

    @property
    def regular(self) -> bool:
        """规则服药: at least `rules.TB_REGULAR_RATE` of the doses due taken."""
        return self.dose_rate >= rules.TB_REGULAR_RATE

    def text(self) -> str:
        return (f"{visit.TB_STOP.get(self.stop_reason, self.stop_reason)}；应访视 {self.visits_due} 次，"
                f"实际 {self.visits_done} 次；应服药 {self.doses_due} 次，实际 {self.doses_taken} 次，"
                f"服药率 {self.dose_rate:.1%}（{'规则服药' if self.regular else '未规则服药'}）")


def close_tb(db: Session, subject: Subject, registration_id: int, data: ClosingIn) -> Closing:
    """End a TB treatment with its closing assessment: the visits due (follow-ups that fell due by the stop) and
    made come from the follow-ups, the doses from the treatment card; the phase becomes completed, the open
    follow-up is cancelled, and a death, a loss or a move to MDR treatment changes the registration's status."""
    reg = require_registration(db, subject, registration_id)
    service._require_staff(subject, reg.institution_id)
    if reg.condition != "tb":
        raise NotFound()
    if reg.tb_phase == "completed":
        raise Conflict("该患者已结案")
    errors = dict(data.errors)
    if data.stop_reason not in visit.TB_STOP:
        errors["stop_reason"] = "请选择停止治疗原因"
    if data.doses_due is None or data.doses_due < 1:
        errors.setdefault("doses_due", "请填写应服药次数")
    if data.doses_taken is None:
        errors.setdefault("doses_taken", "请填写实际服药次数")
    elif data.doses_due is not None and data.doses_taken > data.doses_due:
        errors["doses_taken"] = "实际服药次数不能多于应服药次数"
    if data.stopped_on is None:
        errors.setdefault("stopped_on", "请填写停止治疗日期")
    if errors:
        raise InvalidInput(fields=errors)
    assert data.stopped_on is not None and data.doses_due is not None and data.doses_taken is not None
    day = _day(data.stopped_on, reg)
    tasks = repository.history(db, reg.id)
    closing = Closing(day, data.stop_reason, sum(1 for t in tasks if t.due_on <= day and t.status != "cancelled"),
                      sum(1 for t in tasks if t.status == "done" and t.done_on and t.done_on <= day),
                      data.doses_due, data.doses_taken)
    note = closing.text() + (f"；{data.note.strip()}" if data.note and data.note.strip() else "")
    set_phase(db, subject, reg.id, "completed", note, day, closing=True)
    status = {"died": "deceased", "lost": "lost", "mdr": "transferred"}.get(data.stop_reason)
    if status is not None:
        change_status(db, subject, reg.id, status, note, day)
    for task in repository.open_follow_ups_of(db, reg.id):
        task.status = "cancelled"
    db.add(TbClosing(registration_id=reg.id, stopped_on=day, outcome=closing.stop_reason,
                     visits_due=closing.visits_due, visits_done=closing.visits_done, doses_due=closing.doses_due,
                     doses_taken=closing.doses_taken, regular=closing.regular,
                     note=(data.note or "").strip()[:300] or None, assessed_by_user_id=subject.user_id,
                     assessed_at=clock.now()))
    db.flush()
    audit.record(db, subject, "close", "chronic_registration", reg.id, patient_id=reg.patient_id,
                 detail={"stop_reason": closing.stop_reason, "visits_due": closing.visits_due,
                         "visits_done": closing.visits_done, "doses_due": closing.doses_due,
                         "doses_taken": closing.doses_taken, "regular": closing.regular})
    return closing
