"""Diagnostics workflow JSON API: catalogue, orders, worklist, claim, report, critical values.

Every move goes through `workflow.transition`: 409 `diagnostic_state_conflict` when the move
does not fit the current status (or a stale `expected_status`), 409 `diagnostic_already_claimed`
when another reader holds the study, 404 for an institution on neither side, 403 for the
wrong side or role.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query

from yilianti.auth.deps import DB, Clinical
from yilianti.diagnostics import repository as diagnostics_repo
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.reading import critical
from yilianti.diagnostics.reading import service as reading
from yilianti.diagnostics.schemas import (
    AssignIn,
    ItemOut,
    MoveIn,
    OrderDetail,
    OrderIn,
    OrderOut,
    ReportIn,
    ReportOut,
    WorklistRow,
)
from yilianti.kit.schemas import Id

router = APIRouter(prefix="/api/v1/diagnostics", tags=["diagnostics"])


@router.get("/catalogue", response_model=list[ItemOut])
def api_catalogue(db: DB, subject: Clinical, centre_id: Id | None = None) -> list[ItemOut]:
    return [ItemOut(id=r.item.id, code=r.item.code, name=r.item.name, kind=r.item.kind, modality=r.item.modality,
                    loinc_code=r.item.loinc_code, local_code=r.item.local_code,
                    reading_centre_institution_id=r.item.reading_centre_institution_id, reading_centre_name=r.centre_name,
                    expected_tat_minutes=r.item.expected_tat_minutes, price_fen=r.price_fen, fee_standard=r.fee_standard)
            for r in workflow.catalogue(db, for_institution_id=subject.acting_institution_id, centre_id=centre_id)]


@router.post("/orders", response_model=OrderOut, status_code=201)
def api_place_order(db: DB, subject: Clinical, data: OrderIn = Body()) -> OrderOut:  # noqa: B008
    return OrderOut.of(workflow.place_order(db, subject, patient_id=data.patient_id, item_id=data.item_id,
                                            priority=data.priority, clinical_question=data.clinical_question))


@router.get("/orders", response_model=list[OrderOut])
def api_orders(db: DB, subject: Clinical, side: Literal["site", "centre"] = "site",
               status: str | None = None) -> list[OrderOut]:
    rows = reading.centre_orders(db, subject) if side == "centre" else workflow.site_orders(db, subject, status=status)
    return [OrderOut.of(r.order) for r in rows]


def _detail(db: Any, subject: Any, order_id: Id) -> OrderDetail:
    order, sides = workflow.get(db, subject, order_id)
    report = diagnostics_repo.report_of(db, order.id)
    from yilianti.diagnostics.states import RESULTED, Side

    visible = report is not None and (Side.centre in sides or order.status in RESULTED)
    return OrderDetail(order=OrderOut.of(order), report=ReportOut.of(report) if visible and report else None,
                       history=[{"at": h.at, "from": h.from_status, "to": h.to_status, "reason": h.reason,
                                 "user_id": h.user_id} for h in workflow.history(db, subject, order.id)])


@router.get("/orders/{order_id}", response_model=OrderDetail)
def api_order(order_id: Id, db: DB, subject: Clinical) -> OrderDetail:
    return _detail(db, subject, order_id)


@router.post("/orders/{order_id}/transitions", response_model=OrderOut)
def api_move(order_id: Id, db: DB, subject: Clinical, data: MoveIn = Body()) -> OrderOut:  # noqa: B008
    kw = {"expected_status": data.expected_status}
    match data.to_status:
        case "acquired":
            order = workflow.mark_acquired(db, subject, order_id, **kw)
        case "transmitted":
            order = workflow.mark_transmitted(db, subject, order_id, **kw)
        case "received":
            order = workflow.mark_received(db, subject, order_id, **kw)
        case _:
            order = workflow.cancel(db, subject, order_id, data.reason or "", **kw)
    return OrderOut.of(order)


@router.get("/worklist", response_model=list[WorklistRow])
def api_worklist(db: DB, subject: Clinical, include_pending: bool = Query(False)) -> list[WorklistRow]:  # noqa: B008
    return [WorklistRow(order=OrderOut.of(r.order), patient_name=r.patient_name, ordering_institution_name=r.ordering_name,
                        waiting_minutes=r.waiting_minutes, overdue=r.overdue, claimed_by=r.claimed_by)
            for r in reading.worklist(db, subject, include_pending=include_pending)]


@router.post("/orders/{order_id}/claim", response_model=OrderOut)
def api_claim(order_id: Id, db: DB, subject: Clinical) -> OrderOut:
    return OrderOut.of(reading.claim(db, subject, order_id))


@router.post("/orders/{order_id}/assign", response_model=OrderOut)
def api_assign(order_id: Id, db: DB, subject: Clinical, data: AssignIn = Body()) -> OrderOut:  # noqa: B008
    """A centre head or administrator hands a received study to one of the centre's readers."""
    return OrderOut.of(reading.assign(db, subject, order_id, data.reader_user_id))


@router.post("/orders/{order_id}/release", response_model=OrderOut)
def api_release(order_id: Id, db: DB, subject: Clinical) -> OrderOut:
    return OrderOut.of(reading.release(db, subject, order_id))


@router.put("/orders/{order_id}/report", response_model=ReportOut)
def api_report(order_id: Id, db: DB, subject: Clinical, data: ReportIn = Body()) -> ReportOut:  # noqa: B008
    fn = reading.sign if data.sign else reading.save_report
    return ReportOut.of(fn(db, subject, order_id, findings=data.findings, conclusion=data.conclusion,
                           measurements=data.measurements, critical=data.critical))


@router.post("/orders/{order_id}/report/second-signature", response_model=ReportOut)
def api_second_sign(order_id: Id, db: DB, subject: Clinical) -> ReportOut:
    return ReportOut.of(reading.second_sign(db, subject, order_id))


@router.get("/critical-values")
def api_critical(db: DB, subject: Clinical, open_only: bool = True) -> list[dict[str, Any]]:
    return [{"id": r.cv.id, "order_id": r.order.id, "accession_number": r.order.accession_number,
             "patient_name": r.patient_name, "value": r.cv.value_text, "notified_at": r.cv.notified_at,
             "acknowledged_at": r.cv.acknowledged_at, "escalated_at": r.cv.escalated_at}
            for r in critical.list_for(db, subject, open_only=open_only)]


@router.post("/critical-values/{cv_id}/acknowledge")
def api_ack(cv_id: Id, db: DB, subject: Clinical, body: dict[str, Any] | None = Body(None)) -> dict[str, Any]:  # noqa: B008
    cv = critical.acknowledge(db, subject, cv_id, (body or {}).get("note"))
    return {"id": cv.id, "acknowledged_at": cv.acknowledged_at}


@router.get("/tat")
def api_tat(db: DB, subject: Clinical, by: Literal["item", "centre"] = "item", months: int = Query(6, ge=1, le=36)) -> list[dict[str, Any]]:
    return [r.__dict__ for r in reading.tat_stats(db, subject, by=by, months=max(1, min(months, 24)))]
