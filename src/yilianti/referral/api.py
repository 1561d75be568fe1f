"""Referral JSON API: create+submit, worklists, detail with history, transitions, follow-up tasks.

Every move goes through the service functions (and so through `service.transition`):
409 `referral_state_conflict` when the move does not fit the current status (or a stale
`expected_status`), 404 for an institution on neither side, 403 for the wrong side.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.exceptions import InvalidInput
from yilianti.referral import service
from yilianti.referral.schemas import ReferralIn
from yilianti.referral.states import Side, Status

router = APIRouter(prefix="/api/v1", tags=["referrals"])


def apply_move(db: Session, subject: Subject, referral_id: int, to_status: str, *, expected_status: str | None,
               reason: str | None = None, reject_code: str | None = None, booking_id: int | None = None,
               bed_reservation_id: int | None = None, to_institution_id: int | None = None) -> Any:
    """One entry for every move the pages and the API offer; each calls its service function."""
    kw: dict[str, Any] = {"expected_status": expected_status}
    text = reason or ""
    match to_status:
        case Status.submitted:
            return service.submit(db, subject, referral_id, **kw)
        case Status.received:
            return service.receive(db, subject, referral_id, **kw)
        case Status.accepted:
            return service.accept(db, subject, referral_id, note=(text.strip() or None), **kw)
        case Status.rejected:
            return service.reject(db, subject, referral_id, reject_code or "", text, **kw)
        case Status.returned:
            return service.return_with_advice(db, subject, referral_id, text, **kw)
        case Status.scheduled:
            return service.schedule(db, subject, referral_id, booking_id=booking_id,
                                    bed_reservation_id=bed_reservation_id, **kw)
        case Status.arrived:
            return service.arrive(db, subject, referral_id, **kw)
        case Status.did_not_attend:
            return service.did_not_attend(db, subject, referral_id, **kw)
        case Status.outcome_returned:
            return service.return_outcome(db, subject, referral_id, text, **kw)
        case Status.closed:
            return service.close(db, subject, referral_id, **kw)
        case Status.cancelled:
            return service.cancel(db, subject, referral_id, text, **kw)
        case Status.forwarded:
            if to_institution_id is None:
                service.get(db, subject, referral_id)
                raise InvalidInput(fields={"to_institution_id": "请选择目标机构"})
            return service.forward(db, subject, referral_id, to_institution_id, text, **kw)
    service.get(db, subject, referral_id)
    raise InvalidInput(fields={"to_status": "取值不在允许范围内"})


# ------------------------------------------------------------------------------------- models


class HistoryOut(BaseModel):
    at: datetime
    user_id: int | None
    acting_institution_id: int | None
    from_status: str | None
    to_status: str
    reason: str | None
    detail: dict[str, Any] | None


class ReferralOut(BaseModel):
    id: int
    direction: str
    linked_referral_id: int | None
    patient_id: int
    from_institution_id: int
    to_institution_id: int
    to_department_id: int | None
    to_practitioner_id: int | None
    reason: str
    priority: str
    target_service: str | None
    permanent: bool
    summary: dict[str, Any]
    follow_up_plan: dict[str, Any] | None
    status: str
    due_at: datetime | None
    booking_id: int | None
    bed_reservation_id: int | None
    reject_code: str | None
    reject_comment: str | None
    outcome_note: str | None
    forwarded_to_id: int | None
    submitted_at: datetime | None
    created_at: datetime


class ReferralDetail(ReferralOut):
    side: str
    next_moves: list[str]
    history: list[HistoryOut]


class TransitionIn(BaseModel):
    to_status: Status
    expected_status: Status = Field(description="The status the client last saw; a different current status → 409")
    reason: str | None = Field(default=None, max_length=2000,
                               description="note / advice / outcome / cancel or forward reason, by move")
    reject_code: str | None = None
    booking_id: int | None = None
    bed_reservation_id: int | None = None
    to_institution_id: int | None = Field(default=None, description="forward: the next institution")


class TaskOut(BaseModel):
    id: int
    referral_id: int
    patient_id: int
    institution_id: int
    due_on: date
    text: str
    status: str
    done_at: datetime | None


def _detail(db: Session, subject: Subject, referral_id: int) -> dict[str, Any]:
    from yilianti.referral import states

    ref, side = service.get(db, subject, referral_id)
    data = ReferralOut.model_validate(ref, from_attributes=True).model_dump()
    data["side"] = side.value
    data["next_moves"] = [m.value for m in states.next_moves(ref.status, side)]
    data["history"] = [HistoryOut.model_validate(h, from_attributes=True)
                       for h in service.history(db, subject, referral_id)]
    return data


# ------------------------------------------------------------------------------------- routes


@router.post("/referrals", status_code=201, response_model=ReferralDetail)
def create(db: DB, subject: Clinical, body: ReferralIn = Body()) -> dict[str, Any]:
    """Create and submit an up- or down-referral from the acting institution."""
    ref = service.draft_and_submit(db, subject, body)
    return _detail(db, subject, ref.id)


@router.get("/referrals", response_model=list[ReferralOut])
def worklist(db: DB, subject: Clinical, side: Side = Side.sender,
             bucket: Literal["to_triage", "awaiting_booking", "awaiting_arrival", "awaiting_outcome", "overdue",
                             "closed", "drafts", "all"] = "all",
             direction: Literal["up", "down"] | None = None,
             priority: Literal["routine", "urgent", "emergency"] | None = None,
             patient_id: int | None = None, limit: int = Query(200, ge=1, le=500)) -> list[Any]:
    return service.worklist(db, subject, service.WorklistFilter(side, bucket, direction, priority, patient_id), limit)


@router.get("/referrals/{referral_id}", response_model=ReferralDetail)
def read(referral_id: int, db: DB, subject: Clinical) -> dict[str, Any]:
    return _detail(db, subject, referral_id)


@router.post("/referrals/{referral_id}/transition", response_model=ReferralDetail)
def transition(referral_id: int, db: DB, subject: Clinical, body: TransitionIn = Body()) -> dict[str, Any]:
    """Make one move. `expected_status` must equal the current status (optimistic check)."""
    apply_move(db, subject, referral_id, body.to_status, expected_status=body.expected_status, reason=body.reason,
               reject_code=body.reject_code, booking_id=body.booking_id,
               bed_reservation_id=body.bed_reservation_id, to_institution_id=body.to_institution_id)
    return _detail(db, subject, referral_id)


@router.get("/follow-up-tasks", response_model=list[TaskOut], tags=["referrals"])
def tasks(db: DB, subject: Clinical, status: Literal["open", "done"] | None = "open") -> list[Any]:
    return service.follow_up_tasks(db, subject, status)


@router.post("/follow-up-tasks/{task_id}/done", response_model=TaskOut, tags=["referrals"])
def task_done(task_id: int, db: DB, subject: Clinical) -> Any:
    return service.complete_task(db, subject, task_id)
