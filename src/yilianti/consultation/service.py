"""Teleconsultation: one `transition()` for every status change (DOMAIN.md §7).

Two sides see a case: the requesting institution (any of its clinical staff) and the
consulted institution (its case assigners — coordinators — and the assigned experts).
Everyone else gets 404. Every step goes through `transition`: the row is locked, the move
is checked against `states.MOVES` and the acting side, a history row is written, the next
step's deadline set, the step audited and the other side notified through the outbox.

Assigned experts get a temporary, audited access grant to the patient (kind consultation,
source ("consultation", id)); closing, cancelling or converting the case ends it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.consultation import repository as repo
from yilianti.consultation import states
from yilianti.consultation.schemas import (
    AssignIn,
    CloseOutIn,
    ConsultationIn,
    MessageIn,
    OpinionIn,
)
from yilianti.consultation.states import FINAL, OUTCOME_LABELS, STATUS_LABELS, Side, Status
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams, export_rows
from yilianti.kit.repository import Page, page
from yilianti.kit.workflow import Step, Workflow, move_detail
from yilianti.models.alliance import Department, Institution
from yilianti.models.auth import User
from yilianti.models.consultation import (
    Consultation,
    ConsultationHistory,
    ConsultationMessage,
    ConsultationOpinion,
    ConsultationOrder,
    ConsultationParticipant,
    ParticipantRole,
)
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import GrantKind, Patient
from yilianti.models.workforce import Practitioner, Title
from yilianti.notifications.service import notify
from yilianti.scheduling.rules import share_alliance
from yilianti.worker import repository as outbox

ACTING_ROLES = ("doctor", "nurse", "coordinator")
ASSIGNER_ROLES = ("coordinator",)
STATE_CONFLICT = states.STATE_CONFLICT
SOURCE = "consultation"


# ------------------------------------------------------------------------------------- access


def is_assigner(subject: Subject, c: Consultation) -> bool:
    return subject.acting_institution_id == c.consulted_institution_id and subject.has(*ASSIGNER_ROLES)


def my_participation(db: Session, subject: Subject, c: Consultation) -> ConsultationParticipant | None:
    if subject.acting_institution_id != c.consulted_institution_id:
        return None
    return repo.participation_of(db, c.id, subject.user_id, subject.practitioner_id)


def _side(db: Session, subject: Subject, c: Consultation) -> Side:
    inst = subject.acting_institution_id
    if not subject.is_clinical or inst is None:
        raise NotFound()
    if inst == c.requesting_institution_id:
        return Side.requester
    if inst == c.consulted_institution_id and (is_assigner(subject, c) or my_participation(db, subject, c)):
        return Side.consultant
    raise NotFound()


def get(db: Session, subject: Subject, consultation_id: int) -> tuple[Consultation, Side]:
    """The case and the side the subject acts for; 404 when the subject is on neither side."""
    c = kit.get(db, Consultation, consultation_id)
    if c is None:
        raise NotFound()
    return c, _side(db, subject, c)


def read(db: Session, subject: Subject, consultation_id: int) -> tuple[Consultation, Side]:
    """`get` plus an audited read of the case (it holds the patient's question and summary)."""
    c, side = get(db, subject, consultation_id)
    audit.record(db, subject, "read", "consultation", c.id, patient_id=c.patient_id, basis=side.value)
    return c, side


def history(db: Session, subject: Subject, consultation_id: int) -> list[ConsultationHistory]:
    get(db, subject, consultation_id)
    return repo.history(db, consultation_id)


def video_link(c: Consultation) -> str | None:
    """The case's own link, else one from YILIANTI_VIDEO_URL_TEMPLATE; no external service is called."""
    if c.video_url:
        return c.video_url
    template = get_settings().video_url_template.strip()
    if not template or not c.case_no:
        return None
    try:
        return template.format(case_no=c.case_no, id=c.id)
    except (KeyError, IndexError, ValueError):
        return None


# ------------------------------------------------------------------------------------- the one transition


def _sides(db: Session, subject: Subject | None, c: Consultation) -> tuple[Side]:
    assert subject is not None
    return (_side(db, subject, c),)


def _deadline(step: Step[Consultation]) -> datetime | None:
    c = step.row
    assert c.answer_due_at is not None
    return states.step_due(step.to, c.created_at, c.answer_due_at)


def _audit(db: Session, step: Step[Consultation]) -> None:
    audit.record(db, step.subject, f"consultation.{step.to}", "consultation", step.row.id,
                 patient_id=step.row.patient_id, reason=step.reason, detail=move_detail(step.before, step.to))


def _notify(db: Session, step: Step[Consultation]) -> None:
    if step.side is not None:
        c = step.row
        other = c.consulted_institution_id if step.side == Side.requester else c.requesting_institution_id
        label = STATUS_LABELS.get(Status(step.to), step.to)
        notify(db, title=f"会诊 {c.case_no}：{label}", body=step.reason, link=f"/consultations/{c.id}",
               institution_id=other, kind="consultation", urgent=c.urgency == "emergency")


WORKFLOW: Workflow[Consultation] = Workflow(
    machine=states.MACHINE, model=Consultation, sides=_sides, wrong_side="该操作应由会诊的另一方执行",
    roles=ACTING_ROLES, roles_message="只有临床人员可以处理会诊", history_model=ConsultationHistory,
    history_key="consultation_id", history_detail=False, deadline=_deadline, audit=_audit, notify=_notify)


def transition(db: Session, subject: Subject, consultation_id: int, to_status: str, *, reason: str | None = None,
               expected_status: str | None = None) -> Consultation:
    return WORKFLOW.transition(db, subject, consultation_id, to_status, reason=reason,
                               expected_status=expected_status)


# ------------------------------------------------------------------------------------- experts


PROBLEMS = {  # code → (field text, message with {name} and {years})
    "inactive": ("该医师已停用", "{name}：该医师已停用"),
    "not_at_site": ("该医师不在被邀请会诊的机构执业", "{name}：该医师不在被邀请会诊的机构执业"),
    "not_qualified": ("该医师独立执业年限不足，不能承担会诊", "{name}：独立执业未满{years}年，不能承担会诊"),
    "missing": ("医师不存在", "医师不存在"),
    "not_physician": ("该人员不是执业医师，不能承担会诊", "{name}：不是执业医师，不能承担会诊"),
}
PHYSICIAN_TITLES = frozenset({Title.chief, Title.associate_chief, Title.attending, Title.resident})


def qualification_problem(db: Session, practitioner: Practitioner, institution_id: int) -> str | None:
    """Why this practitioner may not answer consultations for `institution_id` (a PROBLEMS code), or None."""
    if not practitioner.active:
        return "inactive"
    if practitioner.title not in PHYSICIAN_TITLES:
        return "not_physician"
    at_site = (practitioner.home_institution_id == institution_id
               or repo.practises_at(db, practitioner.id, institution_id))
    if not at_site:
        return "not_at_site"
    years = get_settings().consultation_min_practice_years
    if practitioner.is_trainee or practitioner.years_of_practice(clock.today_local()) < years:
        return "not_qualified"
    return None


def qualified_experts(db: Session, institution_id: int, department_id: int | None = None) -> list[Practitioner]:
    """Experts of the consulted institution who may answer (for the request and assignment forms)."""
    return [p for p in repo.practitioners_at(db, institution_id, department_id)
            if qualification_problem(db, p, institution_id) is None]


def _check_experts(db: Session, institution_id: int, ids: list[int], field: str) -> list[Practitioner]:
    experts: list[Practitioner] = []
    for pid in dict.fromkeys(ids):
        p = kit.get(db, Practitioner, pid)
        problem = "missing" if p is None else qualification_problem(db, p, institution_id)
        if problem is not None:
            field_text, message = PROBLEMS[problem]
            raise InvalidInput(message, code="expert_not_qualified", fields={field: field_text},
                               name=p.name if p is not None else str(pid),
                               years=get_settings().consultation_min_practice_years)
        assert p is not None
        experts.append(p)
    return experts


def _add_participants(db: Session, subject: Subject, c: Consultation, experts: list[Practitioner],
                      lead_id: int | None) -> list[ConsultationParticipant]:
    existing = {p.practitioner_id: p for p in repo.participants(db, c.id, active=False)}
    added: list[ConsultationParticipant] = []
    for p in experts:
        role = ParticipantRole.expert if c.kind != "mdt" else (
            ParticipantRole.lead if p.id == (lead_id or experts[0].id) else ParticipantRole.member)
        part = existing.get(p.id)
        if part is not None and part.removed_at is None:
            continue
        if part is not None:
            part.removed_at, part.role = None, role
        else:
            part = ConsultationParticipant(consultation_id=c.id, practitioner_id=p.id, user_id=repo.active_user_of(db, p.id),
                                           institution_id=c.consulted_institution_id, role=role,
                                           assigned_by_user_id=subject.user_id)
            db.add(part)
        db.flush()
        policy.grant_access(db, subject, patient_id=c.patient_id, institution_id=c.consulted_institution_id,
                            kind=GrantKind.consultation, reason=f"会诊 {c.case_no}", user_id=part.user_id,
                            source=(SOURCE, c.id))
        if part.user_id is not None:
            notify(db, title=f"新的会诊任务 {c.case_no}", body=c.question[:200], link=f"/consultations/{c.id}",
                   user_id=part.user_id, kind="consultation", urgent=c.urgency == "emergency")
        added.append(part)
    return added


# ------------------------------------------------------------------------------------- requesting


def _require_actor(subject: Subject) -> int:
    if not subject.is_clinical or not subject.has(*ACTING_ROLES):
        raise Forbidden("只有临床人员可以发起会诊")
    assert subject.acting_institution_id is not None
    return subject.acting_institution_id


def _check_order(db: Session, c_patient_id: int, order_id: int) -> DiagnosticOrder:
    order = kit.get(db, DiagnosticOrder, order_id)
    if order is None:
        raise InvalidInput("检查单不存在", fields={"order_ids": "检查单不存在"})
    if order.patient_id != c_patient_id:
        raise InvalidInput("该检查（{accession}）属于其他患者，不能作为本会诊的附件", code="order_other_patient",
                           fields={"order_ids": "该检查属于其他患者，不能作为本会诊的附件"},
                           accession=order.accession_number)
    return order


def request(db: Session, subject: Subject, data: ConsultationIn) -> Consultation:
    own = _require_actor(subject)
    policy.require_patient(db, subject, data.patient_id, action="consult")
    fields: dict[str, str] = {}
    if not data.consent_confirmed:
        raise InvalidInput("请先确认患者（或监护人）已知情同意远程会诊", code="consent_required",
                           fields={"consent_confirmed": "请先确认患者（或监护人）已知情同意远程会诊"})
    if kit.get(db, Institution, data.consulted_institution_id) is None:
        fields["consulted_institution_id"] = "被邀请机构不存在"
    elif data.consulted_institution_id == own:
        fields["consulted_institution_id"] = "不能邀请本机构会诊"
    elif not share_alliance(db, own, data.consulted_institution_id):
        fields["consulted_institution_id"] = "被邀请机构与本机构不在同一医联体"
    if data.department_id is not None:
        dept = kit.get(db, Department, data.department_id)
        if dept is None or dept.institution_id != data.consulted_institution_id:
            fields["department_id"] = "科室不属于被邀请机构"
    now = clock.now()
    if data.kind == "mdt":
        if data.scheduled_at is None:
            fields["scheduled_at"] = "多学科会诊请填写会诊时间"
        elif clock.as_utc(data.scheduled_at) < now:
            fields["scheduled_at"] = "会诊时间不能早于现在"
    if data.department_id is None and not data.expert_practitioner_ids and not (data.specialty or "").strip():
        fields["department_id"] = "请选择会诊科室（专科号池）或指定专家"
    if fields:
        raise InvalidInput(fields=fields)
    experts = _check_experts(db, data.consulted_institution_id, data.expert_practitioner_ids,
                             "expert_practitioner_ids")
    for order_id in data.order_ids:
        _check_order(db, data.patient_id, order_id)
    user = kit.get(db, User, subject.user_id)
    scheduled = clock.as_utc(data.scheduled_at) if data.scheduled_at is not None else None
    c = Consultation(
        kind=data.kind, patient_id=data.patient_id, requesting_institution_id=own, requesting_user_id=subject.user_id,
        requesting_practitioner_id=user.practitioner_id if user is not None else None,
        consulted_institution_id=data.consulted_institution_id, department_id=data.department_id,
        specialty=(data.specialty or "").strip() or None, question=data.question,
        clinical_summary=(data.clinical_summary or "").strip() or None, urgency=data.urgency,
        consent_confirmed=True, consent_note=data.consent_note, scheduled_at=scheduled, video_url=data.video_url,
        status=Status.requested, answer_due_at=states.answer_due(now, data.urgency, scheduled), created_at=now,
    )
    db.add(c)
    db.flush()
    c.case_no = f"HZ{clock.to_local(now):%Y%m%d}-{c.id:05d}"
    c.due_at = states.step_due(Status.requested, now, c.answer_due_at)  # type: ignore[arg-type]
    WORKFLOW.create(db, subject, c, at=now)
    for order_id in data.order_ids:
        db.add(ConsultationOrder(consultation_id=c.id, order_id=order_id, purpose="attachment",
                                 linked_by_user_id=subject.user_id))
    audit.record(db, subject, "create", "consultation", c.id, patient_id=c.patient_id,
                 detail={"consulted_institution_id": c.consulted_institution_id, "kind": c.kind,
                         "urgency": c.urgency, "consent_confirmed": True, "order_ids": data.order_ids})
    db.flush()
    if experts:  # named experts: assigned at once, the assigner has nothing to do
        _add_participants(db, subject, c, experts, None)
        WORKFLOW.move(db, subject, c, Status.assigned, None, reason="申请时指定专家")
    notify(db, title=f"新的会诊申请 {c.case_no}", body=c.question[:200], link=f"/consultations/{c.id}",
           institution_id=c.consulted_institution_id, kind="consultation", urgent=c.urgency == "emergency")
    return c


def link_order(db: Session, subject: Subject, consultation_id: int, order_id: int,
               purpose: str = "attachment") -> ConsultationOrder:
    """Attach a result / image / ECG (a diagnostic order of the same patient) to an open case."""
    c, side = get(db, subject, consultation_id)
    if side != Side.requester:
        raise Forbidden("只有申请方可以添加检查资料")
    if c.status in FINAL:
        raise Conflict("会诊已结束，不能再添加资料", code=STATE_CONFLICT)
    _check_order(db, c.patient_id, order_id)
    row = repo.order_link(db, c.id, order_id)
    if row is None:
        row = ConsultationOrder(consultation_id=c.id, order_id=order_id, purpose=purpose,
                                linked_by_user_id=subject.user_id)
        db.add(row)
        audit.record(db, subject, "link_order", "consultation", c.id, patient_id=c.patient_id,
                     detail={"order_id": order_id, "purpose": purpose})
        db.flush()
    return row


def order_exam(db: Session, subject: Subject, consultation_id: int, item_id: int, *, priority: str = "routine",
               clinical_question: str | None = None) -> DiagnosticOrder:
    """Cloud outpatient (云门诊): with the patient present, the requesting doctor orders an examination
    read by the consulted institution's centre through the diagnostics workflow; the case links it."""
    from yilianti.diagnostics.orders import workflow
    from yilianti.models.diagnostics import DiagnosticItem

    c, side = get(db, subject, consultation_id)
    if side != Side.requester:
        raise Forbidden("只有申请方可以开具云门诊检查")
    if c.status in FINAL:
        raise Conflict("会诊已结束，不能再添加资料", code=STATE_CONFLICT)
    item = kit.get(db, DiagnosticItem, item_id)
    if item is None or item.reading_centre_institution_id != c.consulted_institution_id:
        raise InvalidInput(fields={"item_id": "请选择会诊机构诊断中心的检查项目"})
    order = workflow.place_order(db, subject, patient_id=c.patient_id, item_id=item_id, priority=priority,
                                 clinical_question=clinical_question or f"会诊 {c.case_no}：{c.question[:200]}")
    db.add(ConsultationOrder(consultation_id=c.id, order_id=order.id, purpose="ordered",
                             linked_by_user_id=subject.user_id))
    audit.record(db, subject, "order_exam", "consultation", c.id, patient_id=c.patient_id,
                 detail={"order_id": order.id, "item_id": item_id})
    db.flush()
    return order


def orderable_items(db: Session, c: Consultation) -> list[Any]:
    """Items of the consulted centre the requesting site can order (has a price for)."""
    from yilianti.diagnostics.orders import workflow

    return [r for r in workflow.orderable(db, c.requesting_institution_id)
            if r.item.reading_centre_institution_id == c.consulted_institution_id]


# ------------------------------------------------------------------------------------- consulted side


def assign(db: Session, subject: Subject, consultation_id: int, data: AssignIn, *,
           expected_status: str | None = None) -> Consultation:
    """The case assigner (coordinator of the consulted institution) names the expert(s)."""
    c, side = get(db, subject, consultation_id)
    if side != Side.consultant or not is_assigner(subject, c):
        raise Forbidden("只有被邀请机构的会诊分派员可以分派专家")
    if c.status in FINAL or c.status == Status.answered:
        raise Conflict("会诊当前状态为“{current}”，不能执行该操作，请刷新后重试", code=STATE_CONFLICT,
                       current=STATUS_LABELS.get(Status(c.status), c.status))
    experts = _check_experts(db, c.consulted_institution_id, data.practitioner_ids, "practitioner_ids")
    if c.kind != "mdt" and len(experts) > 1:
        raise InvalidInput(fields={"practitioner_ids": "单专家会诊只能分派一位专家；多位专家请使用多学科会诊"})
    if c.kind != "mdt":  # an e-consult has one expert: a new assignment replaces the previous one
        for part in repo.participants(db, c.id):
            if part.practitioner_id != experts[0].id:
                part.removed_at = clock.now()
                _end_participant_grants(db, subject, c, part)
    _add_participants(db, subject, c, experts, data.lead_practitioner_id)
    if c.status == Status.requested:
        transition(db, subject, c.id, Status.assigned, expected_status=expected_status,
                   reason="、".join(p.name for p in experts))
    else:
        audit.record(db, subject, "assign", "consultation", c.id, patient_id=c.patient_id,
                     detail={"practitioner_ids": [p.id for p in experts]})
        db.flush()
    return c


def _end_participant_grants(db: Session, subject: Subject, c: Consultation, part: ConsultationParticipant) -> None:
    for grant in repo.open_grants_of_case(db, SOURCE, c.id, part.user_id):
        grant.revoked_at = clock.now()
        audit.record(db, subject, "revoke", "access_grant", grant.id, patient_id=grant.patient_id)


def _require_expert(db: Session, subject: Subject, c: Consultation) -> ConsultationParticipant:
    part = my_participation(db, subject, c)
    if part is None:
        raise Forbidden("只有被分派的会诊专家可以执行该操作")
    return part


def acknowledge(db: Session, subject: Subject, consultation_id: int, *,
                expected_status: str | None = None) -> Consultation:
    c, _ = get(db, subject, consultation_id)
    part = _require_expert(db, subject, c)
    if part.acknowledged_at is None:
        part.acknowledged_at = clock.now()
    if expected_status is not None and expected_status != c.status:
        raise Conflict("会诊当前状态为“{current}”，不能执行该操作，请刷新后重试", code=STATE_CONFLICT,
                       current=STATUS_LABELS.get(Status(c.status), c.status))
    if c.status == Status.assigned:  # the first expert to take the case moves it; MDT members only sign in
        transition(db, subject, c.id, Status.acknowledged)
        c.acknowledged_at = c.acknowledged_at or part.acknowledged_at
    db.flush()
    return c


def sign_opinion(db: Session, subject: Subject, consultation_id: int, data: OpinionIn, *,
                 expected_status: str | None = None) -> ConsultationOpinion:
    """A signed, never-edited opinion; advice / recommend referral answer the case, more_info asks back."""
    c, _ = get(db, subject, consultation_id)
    part = _require_expert(db, subject, c)
    if expected_status is not None and expected_status != c.status:
        raise Conflict("会诊当前状态为“{current}”，不能执行该操作，请刷新后重试", code=STATE_CONFLICT,
                       current=STATUS_LABELS.get(Status(c.status), c.status))
    if c.status == Status.assigned:  # signing implies having taken the case
        acknowledge(db, subject, c.id)
    target = Status.more_info_needed if data.outcome == "more_info" else Status.answered
    if c.status not in (Status.acknowledged, Status.more_info_needed):
        raise Conflict("会诊当前状态为“{current}”，不能执行该操作，请刷新后重试", code=STATE_CONFLICT,
                       current=STATUS_LABELS.get(Status(c.status), c.status))
    now = clock.now()
    signature = hashlib.sha256("|".join([c.case_no or str(c.id), str(part.practitioner_id), str(subject.user_id),
                                         now.isoformat(), data.outcome, data.text]).encode()).hexdigest()
    opinion = ConsultationOpinion(consultation_id=c.id, practitioner_id=part.practitioner_id, user_id=subject.user_id,
                                  institution_id=c.consulted_institution_id, outcome=data.outcome, text=data.text,
                                  signed_at=now, signature=signature)
    db.add(opinion)
    label = OUTCOME_LABELS[data.outcome]
    if c.status != target:
        transition(db, subject, c.id, target, reason=label)
    else:  # more information asked again: a new opinion, no new status
        audit.record(db, subject, "consultation.opinion", "consultation", c.id, patient_id=c.patient_id,
                     detail={"outcome": data.outcome})
        notify(db, title=f"会诊 {c.case_no}：{label}", link=f"/consultations/{c.id}",
               institution_id=c.requesting_institution_id, kind="consultation")
    c.outcome = data.outcome
    c.first_answered_at = c.first_answered_at or now
    c.answered_at = now
    db.flush()
    return opinion


# ------------------------------------------------------------------------------------- messages


def post_message(db: Session, subject: Subject, consultation_id: int, data: MessageIn) -> ConsultationMessage:
    c, side = get(db, subject, consultation_id)
    if not subject.has(*ACTING_ROLES):
        raise Forbidden("只有临床人员可以处理会诊")
    if c.status in FINAL:
        raise Conflict("会诊已结束，不能再发送消息", code=STATE_CONFLICT)
    msg = ConsultationMessage(consultation_id=c.id, at=clock.now(), user_id=subject.user_id,
                              institution_id=subject.acting_institution_id, body=data.body)
    db.add(msg)
    audit.record(db, subject, "message", "consultation", c.id, patient_id=c.patient_id)
    if side == Side.requester:
        for part in repo.participants(db, c.id):
            if part.user_id is not None:
                notify(db, title=f"会诊 {c.case_no} 有新消息", body=data.body[:200], link=f"/consultations/{c.id}",
                       user_id=part.user_id, kind="consultation")
    else:
        notify(db, title=f"会诊 {c.case_no} 有新消息", body=data.body[:200], link=f"/consultations/{c.id}",
               institution_id=c.requesting_institution_id, kind="consultation")
    db.flush()
    return msg


# ------------------------------------------------------------------------------------- requester decides


def close_out(db: Session, subject: Subject, consultation_id: int, data: CloseOutIn, *,
              expected_status: str | None = None) -> Consultation:
    """The requesting doctor keeps the decision: what was done, a rating, whether a referral was avoided."""
    c = transition(db, subject, consultation_id, Status.closed, expected_status=expected_status,
                   reason=data.action_taken)
    c.rating, c.action_taken, c.avoided_referral = data.rating, data.action_taken, data.avoided_referral
    c.closed_at, c.closed_by_user_id = clock.now(), subject.user_id
    policy.end_grants(db, subject, SOURCE, c.id)
    db.flush()
    return c


def cancel(db: Session, subject: Subject, consultation_id: int, reason: str, *,
           expected_status: str | None = None) -> Consultation:
    get(db, subject, consultation_id)
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise InvalidInput(fields={"reason": "请填写取消原因"})
    c = transition(db, subject, consultation_id, Status.cancelled, reason=reason, expected_status=expected_status)
    c.closed_at, c.closed_by_user_id = clock.now(), subject.user_id
    policy.end_grants(db, subject, SOURCE, c.id)
    db.flush()
    return c


# ------------------------------------------------------------------------------------- worklists

BUCKETS = ("open", "to_assign", "mine", "overdue", "to_close", "done", "all")


@dataclass(frozen=True)
class WorklistFilter:
    side: Side
    bucket: str = "open"
    kind: str | None = None


def _worklist_query(subject: Subject, f: WorklistFilter, now: datetime) -> Select[Any]:
    return repo.worklist_statement(subject.acting_institution_id, f.side == Side.requester, subject.user_id,
                                   subject.practitioner_id, not subject.has(*ASSIGNER_ROLES), f.bucket, f.kind, now,
                                   FINAL, Status.requested, Status.answered)


def worklist(db: Session, subject: Subject, f: WorklistFilter, limit: int | None = None) -> list[Consultation]:
    if not subject.is_clinical:
        return []
    if f.bucket not in BUCKETS:
        raise InvalidInput(fields={"bucket": "取值不在允许范围内"})
    return repo.worklist_rows(db, _worklist_query(subject, f, clock.now()), f.bucket == "done", limit)


def worklist_page(db: Session, subject: Subject, f: WorklistFilter, lp: ListParams) -> Page[Consultation]:
    """One page of the worklist under the list's filters (patient name or case number, requested dates,
    status), with its total; for an export (`lp.export`) every filtered row on one page."""
    if not subject.is_clinical:
        return Page([], 0, 1, lp.per_page)
    q = lp.only(STATUS_LABELS).apply(
        _worklist_query(subject, f, clock.now()).join(Patient, Patient.id == Consultation.patient_id),
        search=(Patient.name, Consultation.case_no), day=Consultation.created_at, status=Consultation.status)
    q = q.order_by(*((Consultation.updated_at.desc(),) if f.bucket == "done"
                     else (Consultation.due_at.asc(), Consultation.id)))
    if lp.export:
        rows = export_rows(db, q)
        return Page(rows, len(rows), 1, max(len(rows), 1))
    return page(db, q, lp.page, lp.per_page)


def worklist_count(db: Session, subject: Subject, side: Side, bucket: str) -> int:
    """How many cases one tab of the worklist holds (a workbench figure: the tab's total)."""
    if not subject.is_clinical:
        return 0
    return repo.count_rows(db, _worklist_query(subject, WorklistFilter(side, bucket), clock.now()))


def worklist_counts(db: Session, subject: Subject, side: Side) -> dict[str, int]:
    if not subject.is_clinical:
        return dict.fromkeys(BUCKETS, 0)
    now = clock.now()
    return {bucket: repo.count_rows(db, _worklist_query(subject, WorklistFilter(side, bucket), now))
            for bucket in BUCKETS}


# ------------------------------------------------------------------------------------- overdue sweep


def sweep_overdue(db: Session, now: datetime | None = None) -> int:
    """Alert both sides (and the assigned experts) once per overdue step."""
    now = now or clock.now()
    cases = repo.overdue_cases(db, now, FINAL)
    alerted = 0
    for c in cases:
        assert c.due_at is not None
        step = f"consultation-overdue:{c.id}:{c.status}:{int(c.due_at.timestamp())}"
        if outbox.queued(db, f"{step}:to"):
            continue
        label = STATUS_LABELS.get(Status(c.status), c.status)
        title = f"会诊 {c.case_no} 已超时（{label}）"
        body = f"截止时间 {clock.fmt_local(c.due_at)}"
        for suffix, inst in (("from", c.requesting_institution_id), ("to", c.consulted_institution_id)):
            notify(db, title=title, body=body, link=f"/consultations/{c.id}", institution_id=inst,
                   kind="consultation_overdue", urgent=True, dedupe_key=f"{step}:{suffix}")
        for part in repo.participants(db, c.id):
            if part.user_id is not None:
                notify(db, title=title, body=body, link=f"/consultations/{c.id}", user_id=part.user_id,
                       kind="consultation_overdue", urgent=True, dedupe_key=f"{step}:u{part.user_id}")
        alerted += 1
    db.flush()
    return alerted
