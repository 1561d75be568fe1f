"""Critical transfer pages: list (both directions, open first), new request, detail with timeline.

Forms post back; on bad input the page is re-rendered with 422 and field errors, a state
conflict (409) is shown on the detail page, success redirects (303) to the detail page.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from yilianti.alliance.repository import institution_names
from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.exceptions import AppError, Conflict, InvalidInput, parse_input
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id
from yilianti.models.patient import Patient
from yilianti.patients import service as patients
from yilianti.scheduling import repository as beds
from yilianti.transfer import repository, service
from yilianti.transfer.schemas import (
    VITAL_RANGES,
    AcceptIn,
    CancelIn,
    DispatchIn,
    MilestoneIn,
    Network,
    TransferIn,
)
from yilianti.transfer.states import Status
from yilianti.web.forms import errors_of
from yilianti.web.render import render_page, t, xlsx_response
from yilianti.workforce import repository as workforce

router = APIRouter(include_in_schema=False)

VITAL_LABELS = {"hr": "心率（次/分）", "bp_sys": "收缩压（mmHg）", "bp_dia": "舒张压（mmHg）", "spo2": "血氧饱和度（%）",
                "rr": "呼吸（次/分）", "temp": "体温（℃）", "gcs": "GCS 评分", "weight_kg": "体重（kg）"}


def _blank_to_none(form: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.strip() or None) if isinstance(v, str) else v for k, v in form.items() if k != "csrf_token"}


async def _form(request: Request) -> dict[str, Any]:
    return _blank_to_none(dict((await request.form()).items()))


@router.get("/transfers")
def transfer_list(request: Request, db: DB, subject: Clinical, direction: str = "all", open: str = "") -> Response:
    if direction not in ("all", "incoming", "outgoing"):
        direction = "all"
    lp = ListParams.of(request.query_params, keep=("direction", "open"))
    pg = service.list_page(db, subject, lp, direction=direction, include_closed=open != "1")
    rows = pg.items
    inst = institution_names(db, {r.origin_institution_id for r in rows} | {r.destination_institution_id for r in rows})
    pats = repository.patient_names(db, {r.patient_id for r in rows})
    if lp.export:
        head = ("病例号", "患者", "申请医院", "接收医院", "网络", "状态", "申请时间")
        body = [(r.case_no, pats.get(r.patient_id, ""), inst.get(r.origin_institution_id, ""),
                 inst.get(r.destination_institution_id, ""), t(request, "transfer.network." + r.network),
                 t(request, "transfer.status." + r.status), r.created_at) for r in rows]
        return xlsx_response(t(request, "重症转运"), [t(request, h) for h in head], body, "transfers")
    return render_page(request, "transfer/list.html", {
        "rows": rows, "pg": pg, "lp": lp, "inst": inst, "pats": pats, "direction": direction,
        "final": service.FINAL, "open_only": open == "1",
        "statuses": [(s.value, "transfer.status." + s.value) for s in Status]})


def _new_ctx(db: Session, subject: Subject, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    # only a patient this institution may see: an id in the URL must not reveal anyone else
    chosen = values.get("patient_id")
    patient = patients.picked(db, subject, int(chosen)) if chosen and str(chosen).isdigit() else None
    return {"values": values, "errors": errors, "patient": patient,
            "destinations": service.destinations(db, subject), "networks": [n.value for n in Network],
            "vital_labels": VITAL_LABELS, "vital_ranges": VITAL_RANGES}


@router.get("/transfers/new")
def transfer_new(request: Request, db: DB, subject: Clinical, patient_id: str = "",
                 network: str = "general", referral_id: str = "", destination_institution_id: str = "") -> Response:
    values = {"patient_id": patient_id, "network": network if network in {n.value for n in Network} else "general",
              "referral_id": referral_id if referral_id.isdigit() else "",
              "destination_institution_id": destination_institution_id}
    return render_page(request, "transfer/new.html", _new_ctx(db, subject, values, {}))


@router.post("/transfers/new")
async def transfer_create(request: Request, db: DB, subject: Clinical) -> Response:
    form = await _form(request)
    vitals = {k: form.get(f"vitals.{k}") for k in VITAL_LABELS if form.get(f"vitals.{k}") is not None}
    data = {k: form.get(k) for k in ("patient_id", "destination_institution_id", "network", "diagnosis",
                                     "referral_id") if form.get(k) is not None}
    data["vitals"] = vitals
    try:
        t = service.request(db, subject, parse_input(TransferIn, data))
    except InvalidInput as exc:
        db.rollback()
        return render_page(request, "transfer/new.html", _new_ctx(db, subject, form, errors_of(request, exc)),
                           status_code=422)
    return RedirectResponse(f"/transfers/{t.id}?done=created", status_code=303)


def _detail_ctx(db: Session, subject: Subject, transfer_id: Id) -> dict[str, Any]:
    v = service.view(db, subject, transfer_id)
    t = v["transfer"]
    v["inst"] = institution_names(db, {t.origin_institution_id, t.destination_institution_id})
    v["patient"] = kit.get(db, Patient, t.patient_id)
    v["labels"] = service.MILESTONE_LABELS
    v["indicator_labels"] = service.INDICATOR_LABELS
    v["main_chain"] = service.MAIN_CHAIN
    v["vital_labels"] = VITAL_LABELS
    since = {leg.kind: leg for leg in v["metrics"].legs}
    v["since"] = since
    v["total"] = service.duration_parts(v["metrics"].total_minutes)
    if v["side"] == "destination" and t.status == "requested":
        v["practitioners"] = workforce.active_practitioners_of(db, [t.destination_institution_id])
        v["wards"] = beds.wards_of(db, t.destination_institution_id)
    return v


@router.get("/transfers/{transfer_id}")
def transfer_detail(request: Request, db: DB, subject: Clinical, transfer_id: Id) -> Response:
    return render_page(request, "transfer/detail.html", {**_detail_ctx(db, subject, transfer_id), "errors": {},
                                                         "form": ""})


@router.post("/transfers/{transfer_id}/{action}")
async def transfer_action(request: Request, db: DB, subject: Clinical, transfer_id: Id, action: str) -> Response:
    form = await _form(request)
    try:
        if action == "accept":
            service.accept(db, subject, transfer_id, parse_input(AcceptIn, form))
        elif action == "dispatch":
            service.dispatch(db, subject, transfer_id, parse_input(DispatchIn, form))
        elif action == "milestone":
            service.record_milestone(db, subject, transfer_id, parse_input(MilestoneIn, form))
        elif action == "cancel":
            service.cancel(db, subject, transfer_id, parse_input(CancelIn, form))
        else:
            service.get(db, subject, transfer_id)
            raise InvalidInput(fields={"action": "取值不在允许范围内"})
    except (InvalidInput, Conflict) as exc:
        db.rollback()
        service.get(db, subject, transfer_id)  # an outsider still gets 404, not the form
        status = exc.status
        ctx = _detail_ctx(db, subject, transfer_id)
        return render_page(request, "transfer/detail.html", {**ctx, "errors": errors_of(request, exc),
                                                             "form": action, "values": form}, status_code=status)
    except AppError:
        raise
    return RedirectResponse(f"/transfers/{transfer_id}?done={action}", status_code=303)
