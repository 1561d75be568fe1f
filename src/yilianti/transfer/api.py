"""Critical transfer JSON API (重症转运).

POST /api/v1/transfers (origin), GET list (both directions of the acting institution),
GET /{id} with the milestone timeline and metrics, POST /{id}/accept (destination),
/{id}/dispatch, /{id}/milestones, /{id}/cancel (either side). 404 for institutions on
neither side; 409 `transfer_state_conflict` / `milestone_out_of_order` /
`milestone_recorded` with nothing changed; 422 with field errors for bad input.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.kit.schemas import Id
from yilianti.models.transfer import CriticalTransfer
from yilianti.transfer import service
from yilianti.transfer.schemas import (
    AcceptIn,
    CancelIn,
    DispatchIn,
    IndicatorOut,
    MilestoneIn,
    MilestoneOut,
    TransferDetailOut,
    TransferIn,
    TransferOut,
)

router = APIRouter(prefix="/api/v1", tags=["transfers"])


def _out(t: CriticalTransfer) -> TransferOut:
    return TransferOut.model_validate(t, from_attributes=True)


def detail(db: Session, subject: Subject, transfer_id: Id) -> TransferDetailOut:
    v = service.view(db, subject, transfer_id)
    t, m = v["transfer"], v["metrics"]
    since = {leg.kind: leg.minutes_since_previous for leg in m.legs}
    return TransferDetailOut(
        **_out(t).model_dump(), side=v["side"],
        milestones=[MilestoneOut(kind=x.kind, at=x.at, minutes_since_previous=since.get(x.kind),
                                 recorded_by_user_id=x.recorded_by_user_id,
                                 recorded_by_institution_id=x.recorded_by_institution_id, note=x.note)
                    for x in v["milestones"]],
        next_milestones=v["allowed"], total_minutes=m.total_minutes,
        indicators=[IndicatorOut(key=i.key, minutes=i.minutes, target_minutes=i.target, met=i.met)
                    for i in m.indicators])


@router.post("/transfers", status_code=201, response_model=TransferDetailOut)
def create_transfer(data: TransferIn, db: DB, subject: Clinical) -> TransferDetailOut:
    t = service.request(db, subject, data)
    return detail(db, subject, t.id)


@router.get("/transfers", response_model=list[TransferOut])
def list_transfers(db: DB, subject: Clinical, direction: str = Query("all", pattern="^(all|incoming|outgoing)$"),
                   open_only: bool = False) -> list[TransferOut]:
    return [_out(t) for t in service.list_for(db, subject, direction=direction, include_closed=not open_only)]


@router.get("/transfers/{transfer_id}", response_model=TransferDetailOut)
def get_transfer(transfer_id: Id, db: DB, subject: Clinical) -> TransferDetailOut:
    return detail(db, subject, transfer_id)


@router.post("/transfers/{transfer_id}/accept", response_model=TransferDetailOut)
def accept_transfer(transfer_id: Id, data: AcceptIn, db: DB, subject: Clinical) -> TransferDetailOut:
    service.accept(db, subject, transfer_id, data)
    return detail(db, subject, transfer_id)


@router.post("/transfers/{transfer_id}/dispatch", response_model=TransferDetailOut)
def dispatch_transfer(transfer_id: Id, data: DispatchIn, db: DB, subject: Clinical) -> TransferDetailOut:
    service.dispatch(db, subject, transfer_id, data)
    return detail(db, subject, transfer_id)


@router.post("/transfers/{transfer_id}/milestones", status_code=201, response_model=TransferDetailOut)
def record_milestone(transfer_id: Id, data: MilestoneIn, db: DB, subject: Clinical) -> TransferDetailOut:
    service.record_milestone(db, subject, transfer_id, data)
    return detail(db, subject, transfer_id)


@router.post("/transfers/{transfer_id}/cancel", response_model=TransferDetailOut)
def cancel_transfer(transfer_id: Id, data: CancelIn, db: DB, subject: Clinical) -> TransferDetailOut:
    service.cancel(db, subject, transfer_id, data)
    return detail(db, subject, transfer_id)
