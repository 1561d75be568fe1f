"""Two-way referral: one `transition()` for every status change (DOMAIN.md §4).

Every step goes through `transition`: the referral row is locked (SELECT … FOR UPDATE on
PostgreSQL; BEGIN IMMEDIATE already serialises writers on SQLite), the move is checked
against the declared table in `states.MOVES` and the acting side, a history row is
written, the next step's deadline is set, the step is audited and the other side is
notified through the outbox. Nothing else writes `Referral.status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from yilianti.attachments import repository as attachments_repo
from yilianti.attachments import service as attachments
from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.chronic import service as chronic
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.kit.repository import Page, page
from yilianti.kit.sqlcompile import as_text
from yilianti.kit.workflow import Step, Workflow, move_detail
from yilianti.models.alliance import Department, Institution
from yilianti.models.attachment import Attachment
from yilianti.models.patient import GrantKind, Patient
from yilianti.models.referral import FollowUpTask, Referral, ReferralHistory
from yilianti.models.scheduling import BedReservation, Booking, ClinicSession
from yilianti.models.workforce import Practitioner
from yilianti.notifications.service import enqueue_notice, notify, payload
from yilianti.referral import repository, states
from yilianti.referral.schemas import ReferralIn
from yilianti.referral.states import FINAL, REJECT_LABELS, STATUS_LABELS, RejectCode, Side, Status
from yilianti.scheduling.rules import arrival_reason, share_alliance
from yilianti.worker import repository as outbox

ACTING_ROLES = ("doctor", "nurse", "coordinator")
STATE_CONFLICT = states.STATE_CONFLICT


# ------------------------------------------------------------------------------------- access


def _side(subject: Subject, ref: Referral) -> Side:
    inst = subject.acting_institution_id
    if inst is not None and inst == ref.from_institution_id:
        return Side.sender
    if inst is not None and inst == ref.to_institution_id:
        return Side.receiver
    raise NotFound()


def get(db: Session, subject: Subject, referral_id: int) -> tuple[Referral, Side]:
    """The referral and the side the subject acts for; 404 when the subject is on neither side."""
    ref = kit.get(db, Referral, referral_id)
    if ref is None or not subject.is_clinical:
        raise NotFound()
    return ref, _side(subject, ref)


def history(db: Session, subject: Subject, referral_id: int) -> list[ReferralHistory]:
    get(db, subject, referral_id)
    return repository.history(db, referral_id)


# ------------------------------------------------------------------------------------- the one transition


def _sides(db: Session, subject: Subject | None, ref: Referral) -> tuple[Side]:
    assert subject is not None
    return (_side(subject, ref),)


def notice(to_status: Any, ref: Any, reason: Any, institution_id: Any) -> dict[str, Any]:
    """The notification of a move to the other side: i18n codes (locale/*/referral.json), rendered in
    each reader's language. `ref` may be columns: the fast path compiles this into its statement."""
    return payload(title="referral.notify." + to_status, body="referral.notify.reason" if reason else None,
                   params={"id": ref.id, "reason": reason or ""}, link="/referrals/" + as_text(ref.id),
                   institution_id=institution_id, kind="referral", urgent=ref.priority == "emergency")


def _deadline(step: Step[Referral]) -> datetime | None:
    due = states.step_deadline(step.to, step.row.priority)
    return step.at + due if due is not None else None


def _audit(db: Session, step: Step[Referral]) -> None:
    audit.record(db, step.subject, f"referral.{step.to}", "referral", step.row.id, patient_id=step.row.patient_id,
                 reason=step.reason, detail=move_detail(step.before, step.to, step.detail))


def _notify(db: Session, step: Step[Referral]) -> None:
    if step.side is not None:
        ref = step.row
        other = ref.to_institution_id if step.side == Side.sender else ref.from_institution_id
        enqueue_notice(db, notice(step.to, ref, step.reason, other))


WORKFLOW: Workflow[Referral] = Workflow(
    machine=states.MACHINE, model=Referral, sides=_sides, wrong_side="该操作应由转诊的另一方执行",
    roles=ACTING_ROLES, roles_message="只有临床人员可以处理转诊", history_model=ReferralHistory,
    history_key="referral_id", deadline=_deadline, audit=_audit, notify=_notify)


def lock_for_move(db: Session, subject: Subject, referral_id: int, to_status: str, *,
                  expected_status: str | None = None) -> tuple[Referral, Side]:
    """Lock the referral row and check that the subject may make this move now (404/409/403).

    `transition` starts with this; cross-domain flows call it first too, so that a booking is
    only made for a referral that can still be scheduled, while the row is held."""
    return WORKFLOW.lock(db, subject, referral_id, to_status, expected_status=expected_status)


def transition(db: Session, subject: Subject, referral_id: int, to_status: str, *, reason: str | None = None,
               detail: dict[str, Any] | None = None, expected_status: str | None = None) -> Referral:
    return WORKFLOW.transition(db, subject, referral_id, to_status, reason=reason, detail=detail,
                               expected_status=expected_status)


# ------------------------------------------------------------------------------------- creating


def _require_actor(subject: Subject) -> int:
    if not subject.is_clinical or not subject.has(*ACTING_ROLES):
        raise Forbidden("只有临床人员可以发起转诊")
    assert subject.acting_institution_id is not None
    return subject.acting_institution_id


def _check_target(db: Session, own: int, to_institution_id: int, fields: dict[str, str],
                  name: str = "to_institution_id") -> None:
    if kit.get(db, Institution, to_institution_id) is None:
        fields[name] = "目标机构不存在"
    elif to_institution_id == own:
        fields[name] = "不能转诊到本机构"
    elif not share_alliance(db, own, to_institution_id):
        fields[name] = "目标机构与本机构不在同一医联体"


def create_draft(db: Session, subject: Subject, data: ReferralIn) -> Referral:
    own = _require_actor(subject)
    policy.require_patient(db, subject, data.patient_id, action="refer")
    fields: dict[str, str] = {}
    _check_target(db, own, data.to_institution_id, fields)
    if data.to_department_id is not None:
        dept = kit.get(db, Department, data.to_department_id)
        if dept is None or dept.institution_id != data.to_institution_id:
            fields["to_department_id"] = "科室不属于目标机构"
    if data.to_practitioner_id is not None and kit.get(db, Practitioner, data.to_practitioner_id) is None:
        fields["to_practitioner_id"] = "医师不存在"
    if data.follow_up_plan is not None and data.follow_up_plan.items and data.direction != "down":
        fields["follow_up_plan"] = "只有下转单可以填写随访计划"
    if data.linked_referral_id is not None:
        linked = kit.get(db, Referral, data.linked_referral_id)
        if (linked is None or linked.patient_id != data.patient_id
                or own not in (linked.from_institution_id, linked.to_institution_id)):
            fields["linked_referral_id"] = "关联的转诊单不存在或不属于该患者"
    if fields:
        raise InvalidInput(fields=fields)
    ref = Referral(
        direction=data.direction, linked_referral_id=data.linked_referral_id, patient_id=data.patient_id,
        from_institution_id=own, from_user_id=subject.user_id, to_institution_id=data.to_institution_id,
        to_department_id=data.to_department_id, to_practitioner_id=data.to_practitioner_id,
        reason=data.reason, priority=data.priority, target_service=data.target_service,
        permanent=data.permanent, summary=data.summary.model_dump(),
        follow_up_plan=data.follow_up_plan.model_dump() if data.follow_up_plan else None,
        status=Status.draft,
    )
    db.add(ref)
    db.flush()
    WORKFLOW.create(db, subject, ref)
    audit.record(db, subject, "create", "referral", ref.id, patient_id=ref.patient_id,
                 detail={"direction": ref.direction, "to_institution_id": ref.to_institution_id})
    db.flush()
    return ref


def submit(db: Session, subject: Subject, referral_id: int, *, expected_status: str | None = None) -> Referral:
    ref, _ = get(db, subject, referral_id)
    policy.require_patient(db, subject, ref.patient_id, action="refer")
    if not share_alliance(db, ref.from_institution_id, ref.to_institution_id):
        raise InvalidInput(fields={"to_institution_id": "目标机构与本机构不在同一医联体"})
    ref = transition(db, subject, referral_id, Status.submitted, expected_status=expected_status)
    ref.submitted_at = clock.now()
    _grant_triage(db, subject, ref)
    _close_linked_up(db, subject, ref)
    return ref


def _close_linked_up(db: Session, subject: Subject, down: Referral) -> None:
    """A down-referral closes the up-referral it answers: once the lead hospital has returned the
    outcome and sends the patient back down, the up-referral is done (its history says by which)."""
    if down.direction != "down" or down.linked_referral_id is None:
        return
    up, side = get(db, subject, down.linked_referral_id)
    if up.direction == "up" and Status.closed in states.moves_for(up.status, up.direction, side):
        close(db, subject, up.id, reason=f"患者已下转（转诊单 #{down.id}）")


def _grant_triage(db: Session, subject: Subject, ref: Referral) -> None:
    """An active referral is a care relationship of the receiver (DOMAIN.md §4b): to triage it, the
    receiving site may read what the referral carries (its attachments) — not the shared record —
    until it decides; acceptance grants the full access, a refusal or cancel ends this one."""
    policy.grant_access(db, subject, patient_id=ref.patient_id, institution_id=ref.to_institution_id,
                        kind=GrantKind.referral, reason=f"转诊分诊 #{ref.id}", source=("referral", ref.id),
                        includes_shared=False, expires_in=timedelta(days=7))


def draft_and_submit(db: Session, subject: Subject, data: ReferralIn) -> Referral:
    return submit(db, subject, create_draft(db, subject, data).id)


# ------------------------------------------------------------------------------------- receiving side


def receive(db: Session, subject: Subject, referral_id: int, *, expected_status: str | None = None) -> Referral:
    return transition(db, subject, referral_id, Status.received, expected_status=expected_status)


def accept(db: Session, subject: Subject, referral_id: int, *, note: str | None = None,
           expected_status: str | None = None) -> Referral:
    """Accepting moves responsibility: the receiver gets access; a down-referral's plan becomes tasks."""
    ref = transition(db, subject, referral_id, Status.accepted, reason=note, expected_status=expected_status)
    policy.end_grants(db, subject, "referral", ref.id)  # the triage grant gives way to the full one
    policy.grant_access(db, subject, patient_id=ref.patient_id, institution_id=ref.to_institution_id,
                        kind=GrantKind.referral, reason=f"转诊 #{ref.id}", source=("referral", ref.id),
                        expires_in=None if ref.permanent else timedelta(days=7))
    if ref.direction == "down" and ref.follow_up_plan:
        today = clock.today_local()
        for item in ref.follow_up_plan.get("items", []):
            db.add(FollowUpTask(referral_id=ref.id, patient_id=ref.patient_id, institution_id=ref.to_institution_id,
                                due_on=today + timedelta(days=int(item["due_in_days"])), text=item["text"]))
        db.flush()
    if ref.direction == "down":  # a hypertensive or diabetic patient arrives into the chronic registry
        chronic.enrol_from_down_referral(db, subject, ref.patient_id, ref.to_institution_id,
                                         list((ref.summary or {}).get("diagnoses") or []), ref.id)
    return ref


def reject(db: Session, subject: Subject, referral_id: int, code: str, comment: str | None = None, *,
           expected_status: str | None = None) -> Referral:
    get(db, subject, referral_id)
    fields: dict[str, str] = {}
    if code not in RejectCode.__members__:
        fields["reject_code"] = "请选择拒绝原因"
    comment = (comment or "").strip() or None
    if code == RejectCode.other and not comment:
        fields["comment"] = "选择“其他”时请说明原因"
    if fields:
        raise InvalidInput(fields=fields)
    label = REJECT_LABELS[RejectCode(code)]
    ref = transition(db, subject, referral_id, Status.rejected, reason=f"{label}：{comment}" if comment else label,
                     detail={"reject_code": code}, expected_status=expected_status)
    ref.reject_code, ref.reject_comment = code, comment
    policy.end_grants(db, subject, "referral", ref.id)
    db.flush()
    return ref


def return_with_advice(db: Session, subject: Subject, referral_id: int, advice: str, *,
                       expected_status: str | None = None) -> Referral:
    get(db, subject, referral_id)
    advice = (advice or "").strip()
    if len(advice) < 2:
        raise InvalidInput(fields={"advice": "请填写处理建议"})
    ref = transition(db, subject, referral_id, Status.returned, reason=advice, expected_status=expected_status)
    ref.reject_comment = advice
    policy.end_grants(db, subject, "referral", ref.id)
    db.flush()
    return ref


def schedule(db: Session, subject: Subject, referral_id: int, *, booking_id: int | None = None,
             bed_reservation_id: int | None = None, expected_status: str | None = None) -> Referral:
    """Attach an existing booking (slot) or bed reservation of the same patient."""
    ref, _ = get(db, subject, referral_id)
    if (booking_id is None) == (bed_reservation_id is None):
        raise InvalidInput(fields={"booking_id": "请选择一个预约号源或一张预留床位"})
    due: datetime | None = None
    booking: Booking | None = None
    bed: BedReservation | None = None
    if booking_id is not None:
        booking = kit.get(db, Booking, booking_id)
        if booking is None or booking.patient_id != ref.patient_id or booking.status != "booked":
            raise InvalidInput(fields={"booking_id": "预约不存在、已取消或不属于该患者"})
        session = kit.get(db, ClinicSession, booking.session_id)
        due = session.ends_at + timedelta(hours=2) if session is not None else None
    else:
        bed = kit.get(db, BedReservation, bed_reservation_id)
        if bed is None or bed.patient_id != ref.patient_id or bed.status != "held":
            raise InvalidInput(fields={"bed_reservation_id": "床位预留不存在、已失效或不属于该患者"})
        due = bed.expires_at
    ref = transition(db, subject, referral_id, Status.scheduled, expected_status=expected_status,
                     detail={"booking_id": booking_id, "bed_reservation_id": bed_reservation_id})
    ref.booking_id, ref.bed_reservation_id = booking_id, bed_reservation_id
    if booking is not None:
        booking.referral_id = ref.id
    if bed is not None:
        bed.referral_id = ref.id
    if due is not None:
        ref.due_at = due
    db.flush()
    return ref


def arrive(db: Session, subject: Subject, referral_id: int, *, mode: str | None = None,
           expected_status: str | None = None, reason: str | None = None) -> Referral:
    """The receiving site records the patient's arrival: on the booked slot or bed (before the booked day
    only with a `reason`: scheduling.rules.arrival_reason), or — for a down-referral at a grassroots site —
    without one (walk-in, or a family doctor's home visit)."""
    ref, side = get(db, subject, referral_id)
    if ref.status == Status.accepted:
        if Status.arrived not in states.moves_for(ref.status, ref.direction, side):
            raise Conflict("上转患者须先预约号源或床位，再登记到诊", code=states.STATE_CONFLICT)
        if mode not in states.UNBOOKED_ARRIVAL:
            raise InvalidInput(fields={"arrival_mode": "请选择到诊方式：直接到诊或家庭医生上门"})
        ref = transition(db, subject, referral_id, Status.arrived, expected_status=expected_status,
                         detail={"mode": mode})
        chronic.enrol_from_down_referral(db, subject, ref.patient_id, ref.to_institution_id,
                                         list((ref.summary or {}).get("diagnoses") or []), ref.id, arrived=True)
        return ref
    # on the booked slot or bed: the move, with the reason when the booked day is still ahead (referral/fastpath.py
    # makes the same move, and leaves an early arrival to this function by the same clause)
    early = arrival_reason(db, ref.booking_id, reason, field="reason") if ref.status == Status.scheduled else None
    return transition(db, subject, referral_id, Status.arrived, expected_status=expected_status, reason=early,
                      detail={"early": True} if early else None)


def did_not_attend(db: Session, subject: Subject, referral_id: int, *,
                   expected_status: str | None = None) -> Referral:
    ref = transition(db, subject, referral_id, Status.did_not_attend, expected_status=expected_status)
    policy.end_grants(db, subject, "referral", ref.id)
    return ref


def return_outcome(db: Session, subject: Subject, referral_id: int, outcome: str, *,
                   expected_status: str | None = None) -> Referral:
    get(db, subject, referral_id)
    outcome = (outcome or "").strip()
    if len(outcome) < 2:
        raise InvalidInput(fields={"outcome": "请填写诊疗结果（会诊意见或出院小结）"})
    ref = transition(db, subject, referral_id, Status.outcome_returned, expected_status=expected_status)
    ref.outcome_note = outcome
    return ref


def close(db: Session, subject: Subject, referral_id: int, *, expected_status: str | None = None,
          reason: str | None = None) -> Referral:
    ref = transition(db, subject, referral_id, Status.closed, expected_status=expected_status, reason=reason)
    if not ref.permanent:
        policy.end_grants(db, subject, "referral", ref.id)
    return ref


def cancel(db: Session, subject: Subject, referral_id: int, reason: str, *,
           expected_status: str | None = None) -> Referral:
    get(db, subject, referral_id)
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise InvalidInput(fields={"reason": "请填写取消原因"})
    ref = transition(db, subject, referral_id, Status.cancelled, reason=reason, expected_status=expected_status)
    policy.end_grants(db, subject, "referral", ref.id)
    return ref


def forward(db: Session, subject: Subject, referral_id: int, to_institution_id: int, reason: str, *,
            expected_status: str | None = None) -> Referral:
    """The receiver passes the referral on: this one ends as forwarded, a linked new one is submitted."""
    ref, side = get(db, subject, referral_id)
    fields: dict[str, str] = {}
    reason = (reason or "").strip()
    if len(reason) < 2:
        fields["reason"] = "请填写转至其他机构的原因"
    _check_target(db, ref.to_institution_id, to_institution_id, fields)
    if to_institution_id == ref.from_institution_id:
        fields["to_institution_id"] = "不能转回发起机构，请使用“退回”"
    if fields:
        raise InvalidInput(fields=fields)
    old = transition(db, subject, referral_id, Status.forwarded, reason=reason,
                     detail={"to_institution_id": to_institution_id}, expected_status=expected_status)
    new = Referral(
        direction=old.direction, linked_referral_id=old.id, patient_id=old.patient_id,
        from_institution_id=old.to_institution_id, from_user_id=subject.user_id,
        to_institution_id=to_institution_id, reason=f"{old.reason}\n（转至本机构：{reason}）",
        priority=old.priority, target_service=old.target_service, permanent=old.permanent,
        summary=dict(old.summary or {}), follow_up_plan=old.follow_up_plan, status=Status.draft,
    )
    db.add(new)
    db.flush()
    WORKFLOW.create(db, subject, new, detail={"forwarded_from": old.id})
    WORKFLOW.move(db, subject, new, Status.submitted, Side.sender, reason=reason, detail={"forwarded_from": old.id})
    new.submitted_at = clock.now()
    old.forwarded_to_id = new.id
    policy.end_grants(db, subject, "referral", old.id)
    _grant_triage(db, subject, new)
    db.flush()
    return new


# ------------------------------------------------------------------------------------- attachments

OWNER = "referral"


def attach(db: Session, subject: Subject, referral_id: int, filename: str | None, content_type: str | None,
           data: bytes) -> Attachment:
    """Either side adds a file (PDF, image, DICOM) while the referral is open."""
    ref, _ = get(db, subject, referral_id)
    if not subject.has(*ACTING_ROLES):
        raise Forbidden("只有临床人员可以上传附件")
    if ref.status in FINAL:
        raise Conflict("转诊单已结束（{current}），不能再添加附件", code="referral_closed",
                       current=STATUS_LABELS.get(Status(ref.status), ref.status))
    return attachments.store(db, subject, ref.patient_id, OWNER, ref.id, filename, content_type, data)


def attachments_of(db: Session, subject: Subject, referral_id: int) -> list[Attachment]:
    get(db, subject, referral_id)
    return attachments_repo.attachments_of(db, OWNER, referral_id)


def open_attachment(db: Session, subject: Subject, referral_id: int, attachment_id: int) -> attachments.Download:
    get(db, subject, referral_id)
    return attachments.open_for_download(db, subject, attachment_id, owner=(OWNER, referral_id))


def delete_attachment(db: Session, subject: Subject, referral_id: int, attachment_id: int) -> Attachment:
    get(db, subject, referral_id)
    return attachments.delete(db, subject, attachment_id, owner=(OWNER, referral_id))


# ------------------------------------------------------------------------------------- worklists

BUCKETS = ("to_triage", "awaiting_booking", "awaiting_arrival", "awaiting_outcome", "overdue", "closed",
           "drafts", "all")


@dataclass(frozen=True)
class WorklistFilter:
    side: Side
    bucket: str = "all"
    direction: str | None = None
    priority: str | None = None
    patient_id: int | None = None


def _worklist_query(subject: Subject, f: WorklistFilter, now: datetime) -> Select[Any]:
    return repository.worklist_statement(subject.acting_institution_id, f.side == Side.sender, f.bucket, now,
                                         direction=f.direction, priority=f.priority, patient_id=f.patient_id)


def worklist(db: Session, subject: Subject, f: WorklistFilter, limit: int = 200) -> list[Referral]:
    if not subject.is_clinical:
        return []
    if f.bucket not in BUCKETS:
        raise InvalidInput(fields={"bucket": "取值不在允许范围内"})
    return repository.worklist_rows(db, _worklist_query(subject, f, clock.now()), f.bucket == "closed", limit)


def worklist_statement(subject: Subject, f: WorklistFilter, lp: ListParams) -> Select[Any]:
    """The worklist as the list page shows it: `lp`'s search (patient name, referral number), dates (created)
    and status on top of the bucket, in the worklist's order — the statement the page pages and exports."""
    q = _worklist_query(subject, f, clock.now()).join(Patient, Patient.id == Referral.patient_id)
    q = lp.only(STATUS_LABELS).apply(q, search=(Patient.name,), exact=(Referral.id,), day=Referral.created_at,
                                     status=Referral.status)
    order = (Referral.due_at.asc(), Referral.id.asc()) if f.bucket != "closed" else (Referral.updated_at.desc(),)
    return q.order_by(*order)


def worklist_page(db: Session, subject: Subject, f: WorklistFilter, lp: ListParams) -> Page[Referral]:
    """One page of the filtered worklist, with its total."""
    if not subject.is_clinical:
        return Page([], 0, 1, lp.per_page)
    return page(db, worklist_statement(subject, f, lp), lp.page, lp.per_page)


def worklist_counts(db: Session, subject: Subject, side: Side) -> dict[str, int]:
    if not subject.is_clinical:
        return dict.fromkeys(BUCKETS, 0)
    now = clock.now()
    return {bucket: repository.count_rows(db, _worklist_query(subject, WorklistFilter(side, bucket), now))
            for bucket in BUCKETS}


def follow_up_tasks(db: Session, subject: Subject, status: str | None = "open") -> list[FollowUpTask]:
    if not subject.is_clinical:
        return []
    return repository.follow_up_tasks_at(db, subject.acting_institution_id, status)


def complete_task(db: Session, subject: Subject, task_id: int) -> FollowUpTask:
    task = kit.get(db, FollowUpTask, task_id)
    if task is None or not subject.is_clinical or task.institution_id != subject.acting_institution_id:
        raise NotFound()
    if not subject.has(*ACTING_ROLES):
        raise Forbidden()
    if task.status != "done":
        task.status, task.done_at = "done", clock.now()
        audit.record(db, subject, "complete", "follow_up_task", task.id, patient_id=task.patient_id)
        db.flush()
    return task


# ------------------------------------------------------------------------------------- overdue sweep


def sweep_overdue(db: Session, now: datetime | None = None) -> int:
    """Alert both sides once per overdue step (the outbox dedupe key names the step)."""
    now = now or clock.now()
    refs = repository.overdue_referrals(db, now)
    alerted = 0
    for ref in refs:
        assert ref.due_at is not None
        step = f"referral-overdue:{ref.id}:{ref.status}:{int(ref.due_at.timestamp())}"
        if outbox.queued(db, f"{step}:from"):
            continue
        for suffix, inst in (("from", ref.from_institution_id), ("to", ref.to_institution_id)):
            notify(db, title=f"referral.overdue.{ref.status}", body="referral.overdue.body",
                   params={"id": ref.id, "due": clock.fmt_local(ref.due_at)}, link=f"/referrals/{ref.id}",
                   institution_id=inst, kind="referral_overdue", urgent=True, dedupe_key=f"{step}:{suffix}")
        alerted += 1
    db.flush()
    return alerted


# ------------------------------------------------------------------------------------- one entry for every move


def apply_move(db: Session, subject: Subject, referral_id: int, to_status: str, *, expected_status: str | None,
               reason: str | None = None, reject_code: str | None = None, booking_id: int | None = None,
               bed_reservation_id: int | None = None, to_institution_id: int | None = None,
               arrival_mode: str | None = None) -> Any:
    """One entry for every move the pages, the JSON API and FHIR (a Task update) offer; each calls its service
    function."""
    kw: dict[str, Any] = {"expected_status": expected_status}
    text = reason or ""
    match to_status:
        case Status.submitted:
            return submit(db, subject, referral_id, **kw)
        case Status.received:
            return receive(db, subject, referral_id, **kw)
        case Status.accepted:
            return accept(db, subject, referral_id, note=(text.strip() or None), **kw)
        case Status.rejected:
            return reject(db, subject, referral_id, reject_code or "", text, **kw)
        case Status.returned:
            return return_with_advice(db, subject, referral_id, text, **kw)
        case Status.scheduled:
            return schedule(db, subject, referral_id, booking_id=booking_id,
                                    bed_reservation_id=bed_reservation_id, **kw)
        case Status.arrived:
            return arrive(db, subject, referral_id, mode=arrival_mode, reason=text or None, **kw)
        case Status.did_not_attend:
            return did_not_attend(db, subject, referral_id, **kw)
        case Status.outcome_returned:
            return return_outcome(db, subject, referral_id, text, **kw)
        case Status.closed:
            return close(db, subject, referral_id, **kw)
        case Status.cancelled:
            return cancel(db, subject, referral_id, text, **kw)
        case Status.forwarded:
            if to_institution_id is None:
                get(db, subject, referral_id)
                raise InvalidInput(fields={"to_institution_id": "请选择目标机构"})
            return forward(db, subject, referral_id, to_institution_id, text, **kw)
    get(db, subject, referral_id)
    raise InvalidInput(fields={"to_status": "取值不在允许范围内"})
