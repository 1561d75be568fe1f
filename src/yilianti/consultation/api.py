"""Teleconsultation JSON API: request, worklists, case with history/opinions/messages, every move, report.

404 for a case the acting institution is on neither side of (or, at the consulted
institution, neither its assigner nor an assigned expert); 403 for the wrong side or role;
409 `consultation_state_conflict` when a move does not fit the current status.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical, CurrentSubject
from yilianti.authz.subject import Subject
from yilianti.consultation import flows, repository, service, states
from yilianti.consultation.reports import report_period as _period
from yilianti.consultation.reports import report_scope, require_report_viewer
from yilianti.consultation.schemas import (
    AssignIn,
    CloseOutIn,
    ConsultationDetail,
    ConsultationIn,
    ConsultationOut,
    ConvertIn,
    HistoryOut,
    LinkOrderIn,
    MessageIn,
    MessageOut,
    OpinionIn,
    OpinionOut,
    OrderLinkOut,
    ParticipantOut,
    TransitionIn,
)
from yilianti.consultation.states import Side
from yilianti.kit.schemas import Day, Id

router = APIRouter(prefix="/api/v1", tags=["consultations"])


def detail(db: Session, subject: Subject, consultation_id: Id) -> dict[str, Any]:
    c, side = service.read(db, subject, consultation_id)
    data = ConsultationOut.model_validate(c, from_attributes=True).model_dump()
    data.update(
        side=side.value, next_moves=[m.value for m in states.next_moves(c.status, side)],
        video_link=service.video_link(c),
        participants=[ParticipantOut.model_validate(p, from_attributes=True) for p in repository.participants(db, c.id)],
        opinions=[OpinionOut.model_validate(o, from_attributes=True) for o in repository.opinions(db, c.id)],
        messages=[MessageOut.model_validate(m, from_attributes=True) for m in repository.messages(db, c.id)],
        orders=[OrderLinkOut(order_id=o.id, accession_number=o.accession_number, kind=o.kind, item_name=o.item_name,
                             status=o.status, purpose=co.purpose) for co, o in repository.orders(db, c.id)],
        history=[HistoryOut.model_validate(h, from_attributes=True)
                 for h in service.history(db, subject, consultation_id)],
    )
    return data


@router.post("/consultations", status_code=201, response_model=ConsultationDetail)
def create(db: DB, subject: Clinical, body: ConsultationIn = Body()) -> dict[str, Any]:
    """Request a consultation (consent confirmed); named experts are assigned at once, else the pool's assigner assigns."""
    c = service.request(db, subject, body)
    return detail(db, subject, c.id)


@router.get("/consultations", response_model=list[ConsultationOut])
def worklist(db: DB, subject: Clinical, side: Side = Side.requester,
             bucket: Literal["open", "to_assign", "mine", "overdue", "to_close", "done", "all"] = "open",
             kind: Literal["econsult", "mdt", "cloud"] | None = None,
             limit: int = Query(200, ge=1, le=500)) -> list[Any]:
    return service.worklist(db, subject, service.WorklistFilter(side, bucket, kind), limit)


@router.get("/consultations/report")
def report(db: DB, subject: CurrentSubject, by: Literal["month", "expert", "member", "consulted"] = "month",
           start: Day | None = None, end: Day | None = None) -> dict[str, Any]:
    """Volumes, median answer time, share within deadline, avoided referrals and conversions."""
    require_report_viewer(subject)
    start, end = _period(start, end)
    rows = repository.figures(db, start, end, by=by, institution_ids=report_scope(db, subject))
    return {"by": by, "start": start.isoformat(), "end": end.isoformat(),
            "rows": [r.as_dict() for r in rows], "totals": repository.totals(rows) if by != "expert" else None}


@router.get("/consultations/{consultation_id}", response_model=ConsultationDetail)
def read(consultation_id: Id, db: DB, subject: Clinical) -> dict[str, Any]:
    return detail(db, subject, consultation_id)


@router.post("/consultations/{consultation_id}/assign", response_model=ConsultationDetail)
def assign(consultation_id: Id, db: DB, subject: Clinical, body: AssignIn = Body()) -> dict[str, Any]:
    service.assign(db, subject, consultation_id, body)
    return detail(db, subject, consultation_id)


@router.post("/consultations/{consultation_id}/acknowledge", response_model=ConsultationDetail)
def acknowledge(consultation_id: Id, db: DB, subject: Clinical, body: TransitionIn = Body(default=None)) -> dict[str, Any]:
    service.acknowledge(db, subject, consultation_id, expected_status=body.expected_status if body else None)
    return detail(db, subject, consultation_id)


@router.post("/consultations/{consultation_id}/opinions", status_code=201, response_model=ConsultationDetail)
def sign(consultation_id: Id, db: DB, subject: Clinical, body: OpinionIn = Body()) -> dict[str, Any]:
    """Sign an opinion: advice / more_info / recommend_referral. Signed opinions are never edited."""
    service.sign_opinion(db, subject, consultation_id, body)
    return detail(db, subject, consultation_id)


@router.post("/consultations/{consultation_id}/messages", status_code=201, response_model=ConsultationDetail)
def message(consultation_id: Id, db: DB, subject: Clinical, body: MessageIn = Body()) -> dict[str, Any]:
    service.post_message(db, subject, consultation_id, body)
    return detail(db, subject, consultation_id)


@router.post("/consultations/{consultation_id}/orders", status_code=201, response_model=ConsultationDetail)
def link_order(consultation_id: Id, db: DB, subject: Clinical, body: LinkOrderIn = Body()) -> dict[str, Any]:
    """Attach a result / image / ECG: a diagnostic order of the same patient."""
    service.link_order(db, subject, consultation_id, body.order_id)
    return detail(db, subject, consultation_id)


@router.post("/consultations/{consultation_id}/close", response_model=ConsultationDetail)
def close(consultation_id: Id, db: DB, subject: Clinical, body: CloseOutIn = Body()) -> dict[str, Any]:
    service.close_out(db, subject, consultation_id, body)
    return detail(db, subject, consultation_id)


@router.post("/consultations/{consultation_id}/cancel", response_model=ConsultationDetail)
def cancel(consultation_id: Id, db: DB, subject: Clinical, body: TransitionIn = Body()) -> dict[str, Any]:
    service.cancel(db, subject, consultation_id, body.reason or "", expected_status=body.expected_status)
    return detail(db, subject, consultation_id)


@router.post("/consultations/{consultation_id}/convert", response_model=ConsultationDetail)
def convert(consultation_id: Id, db: DB, subject: Clinical, body: ConvertIn = Body(default=None)) -> dict[str, Any]:
    """Convert to an up-referral carrying the question, summary, opinion and attachment references."""
    flows.convert_to_referral(db, subject, consultation_id, body)
    return detail(db, subject, consultation_id)
