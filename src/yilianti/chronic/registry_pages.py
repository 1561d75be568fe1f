"""Registry pages: the institution's registrations of the four registries (search, condition, risk, status,
enrolment dates, paging, xlsx) with enrolment, and one registration with its status, risk level or danger grade,
TB phase and the history of every change."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.chronic import forms, registry, repository, service, visit
from yilianti.exceptions import AppError, InvalidInput, NotFound
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams, export_rows
from yilianti.models.chronic import ChronicRegistration
from yilianti.models.patient import Patient
from yilianti.patients import service as patients
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)
KEEP = ("condition", "risk", "team_id")


def _list_context(request: Request, db: Session, subject: Subject) -> dict[str, Any]:
    inst = subject.acting_institution_id
    if inst is None or not subject.is_clinical:
        raise NotFound()
    lp = ListParams.of(request.query_params, keep=KEEP).only(registry.STATUSES)
    extra = dict(lp.extra)
    condition = extra.get("condition", "") if extra.get("condition") in service.CONDITIONS else ""
    risk = extra.get("risk", "")
    stmt = lp.apply(repository.registration_rows(subject, inst, condition=condition, risk=risk,
                                                 team_id=opt_int(extra.get("team_id"))),
                    search=[Patient.name], exact=[ChronicRegistration.icd10], day=ChronicRegistration.enrolled_on,
                    status=ChronicRegistration.status)
    risk_options = [(c, "chronic.risk") for c in registry.RISKS] + [(c, "chronic.smi_grade") for c in registry.SMI_GRADES]
    return {"lp": lp, "stmt": stmt, "condition": condition, "risk": risk, "conditions": service.CONDITIONS,
            "statuses": list(registry.STATUSES.items()),
            "risk_options": risk_options, "team_filter": extra.get("team_id", ""), "teams": repository.teams_of(db, inst), "registry": registry}


def _risk_label(request: Request, reg: ChronicRegistration) -> str:
    kind = registry.value_label_kind("risk", reg.condition)
    return t(request, f"{kind}.{reg.risk_level}") if reg.risk_level and kind else ""


@router.get("/chronic/registry")
def registry_page(request: Request, db: DB, subject: Clinical) -> Response:
    ctx = _list_context(request, db, subject)
    if ctx["lp"].export:
        rows = [(p.name, t(request, "chronic.condition." + r.condition), r.icd10, r.enrolled_on,
                 _risk_label(request, r), t(request, "chronic.registration_status." + r.status))
                for r, p in export_rows(db, ctx["stmt"], scalars=False)]
        head = [t(request, h) for h in ("患者", "病种", "ICD-10", "纳入管理日期", "危险分层", "管理状态")]
        return xlsx_response(t(request, "慢病登记"), head, rows, "chronic-registry")
    ctx["pg"] = kit.page(db, ctx["stmt"], ctx["lp"].page, ctx["lp"].per_page, scalars=False)
    return render_page(request, "chronic/registry.html", ctx)


@router.post("/chronic/registry")
async def enrol(request: Request, db: DB, subject: Clinical) -> Response:
    values = await forms.values(request)
    errors: dict[str, str] = {}
    data = registry.EnrolIn(patient_id=opt_int(values.get("patient_id")), condition=values.get("condition", ""),
                            icd10=values.get("icd10", ""), enrolled_on=forms.day(values, "enrolled_on", errors),
                            team_id=opt_int(values.get("team_id")), risk_level=values.get("risk_level") or None,
                            notified_on=forms.day(values, "notified_on", errors), errors=errors)
    try:
        reg = registry.enrol(db, subject, data)
    except AppError as exc:
        db.rollback()
        ctx = _list_context(request, db, subject)
        ctx["pg"] = kit.page(db, ctx["stmt"], ctx["lp"].page, ctx["lp"].per_page, scalars=False)
        picked = data.patient_id
        ctx.update(enrol_errors=errors_of(request, exc), enrol_form=values,
                   enrol_patient=patients.picked(db, subject, picked) if picked else None)
        return render_page(request, "chronic/registry.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/chronic/registrations/{reg.id}?done=enrolled", status_code=303)


def _detail_context(db: Session, subject: Subject, registration_id: int) -> dict[str, Any]:
    reg = registry.require_registration(db, subject, registration_id)
    return {"reg": reg, "patient": repository.patient_of(db, reg.patient_id),
            "events": repository.registration_events(db, reg.id),
            "next": repository.open_follow_up(db, reg.id), "team": next(
                (x for x in repository.teams_of(db, reg.institution_id) if x.id == reg.team_id), None),
            "risk_codes": registry.risk_codes(reg.condition), "risk_kind": registry.value_label_kind("risk", reg.condition),
            "statuses": registry.STATUSES, "phases": registry.TB_PHASES, "registry": registry,
            "stop_reasons": visit.TB_STOP,
            "closing": repository.tb_closing(db, reg.id) if reg.condition == "tb" else None}


@router.get("/chronic/registrations/{registration_id}")
def registration_page(request: Request, db: DB, subject: Clinical, registration_id: int) -> Response:
    return render_page(request, "chronic/registration.html", _detail_context(db, subject, registration_id))


@router.post("/chronic/registrations/{registration_id}/closing")
async def close_tb(request: Request, db: DB, subject: Clinical, registration_id: int) -> Response:
    """A TB treatment's closing assessment (结案评估)."""
    values = await forms.values(request)
    errors: dict[str, str] = {}
    data = registry.ClosingIn(stopped_on=forms.day(values, "stopped_on", errors),
                              stop_reason=values.get("stop_reason", ""),
                              doses_due=forms.integer(values, "doses_due", errors),
                              doses_taken=forms.integer(values, "doses_taken", errors), note=values.get("note"),
                              errors=errors)
    try:
        registry.close_tb(db, subject, registration_id, data)
    except AppError as exc:
        db.rollback()
        if exc.status == 404:
            raise
        ctx = _detail_context(db, subject, registration_id)
        ctx.update(errors=errors_of(request, exc), form=values, change="closing")
        return render_page(request, "chronic/registration.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/chronic/registrations/{registration_id}?done=tb_closed", status_code=303)


CHANGES = {"status": registry.change_status, "risk": registry.set_risk, "phase": registry.set_phase}
FIELDS = {"status": "status", "risk": "risk_level", "phase": "tb_phase"}


@router.post("/chronic/registrations/{registration_id}/{change}")
async def change(request: Request, db: DB, subject: Clinical, registration_id: int, change: str) -> Response:
    if change not in CHANGES:
        raise NotFound()
    values = await forms.values(request)
    errors: dict[str, str] = {}
    on = forms.day(values, "effective_on", errors)
    try:
        if errors:
            raise InvalidInput(fields=errors)
        CHANGES[change](db, subject, registration_id, values.get(FIELDS[change], ""), values.get("reason"), on)
    except AppError as exc:
        db.rollback()
        if exc.status == 404:
            raise
        ctx = _detail_context(db, subject, registration_id)
        ctx.update(errors=errors_of(request, exc), form=values, change=change)
        return render_page(request, "chronic/registration.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/chronic/registrations/{registration_id}?done={change}_changed", status_code=303)
