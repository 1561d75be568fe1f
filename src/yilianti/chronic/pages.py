"""Chronic care pages: a team's follow-ups due (overdue, today, this week), signing a resident with the team
and enrolling them in a registry, and recording a follow-up visit, which plans the next."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.authz.subject import Subject
from yilianti.chronic import outcomes, registry, reminders, repository, service, visit
from yilianti.exceptions import AppError, InvalidInput
from yilianti.web.charts import line_chart
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page

router = APIRouter(include_in_schema=False)


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def _context(db: Any, subject: Subject, team_id: int | None) -> dict[str, Any]:
    teams = repository.teams_of(db, subject.acting_institution_id) if subject.acting_institution_id else []
    team = next((t for t in teams if t.id == team_id), teams[0] if teams else None)
    return {"teams": teams, "team": team,
            "due": service.due_list(db, subject, team.id) if team else None,
            "members": repository.members_of(db, team.id) if team else [],
            "contracts": len(repository.contracts_of_team(db, team.id)) if team else 0,
            "conditions": service.CONDITIONS, "packages": service.PACKAGES, "roles": service.ROLES,
            "reasons": service.REASONS}


@router.get("/chronic")
def chronic_page(request: Request, db: DB, subject: CurrentSubject, team_id: str = "") -> Response:
    return render_page(request, "chronic/index.html", _context(db, subject, opt_int(team_id)))


@router.post("/chronic/teams")
async def create_team(request: Request, db: DB, subject: CurrentSubject) -> Response:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        team = service.create_team(db, subject, values.get("name", ""), values.get("village"),
                                   [(subject.user_id, "gp")])
    except AppError as exc:
        db.rollback()
        ctx = _context(db, subject, None)
        ctx.update(team_errors=errors_of(request, exc), team_form=values)
        return render_page(request, "chronic/index.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/chronic?team_id={team.id}&done=team", status_code=303)


@router.post("/chronic/teams/{team_id}/contracts")
async def sign(request: Request, db: DB, subject: CurrentSubject, team_id: int) -> Response:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        patient_id = opt_int(values.get("patient_id"))
        if patient_id is None:
            raise InvalidInput(fields={"patient_id": "请选择患者"})
        service.sign_contract(db, subject, team_id, patient_id, values.get("package", ""),
                              _date(values.get("start_on", "")))
        for condition in form.getlist("condition"):
            if isinstance(condition, str) and condition:
                service.enrol(db, subject, patient_id, condition, team_id=team_id)
    except AppError as exc:
        db.rollback()
        ctx = _context(db, subject, team_id)
        ctx.update(sign_errors=errors_of(request, exc), sign_form=values)
        return render_page(request, "chronic/index.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/chronic?team_id={team_id}&done=signed", status_code=303)


MULTI = ("symptoms", "danger")


def _visit_context(db: Any, subject: Subject, follow_up_id: int) -> dict[str, Any]:
    task, reg = service.open_task(db, subject, follow_up_id)
    history = [f for f in repository.history(db, reg.id) if f.status == "done"]
    alarm = repository.alarm_for(db, f"visit-{history[0].id}") if history else None
    return {"task": task, "registration": reg, "patient": repository.patient_of(db, task.patient_id),
            "history": history, "form": _carried(history[0]) if history else {},
            "conditions": service.CONDITIONS, "reasons": service.REASONS,
            "classifications": service.CLASSIFICATIONS, "v": visit, "grades": registry.SMI_GRADES,
            "suggest_referral": f"/chronic/alarms/{alarm.id}/refer" if alarm else None,
            "calls": repository.calls_of(db, [task.id]).get(task.id, []),
            "sent": repository.reminders_of(db, [task.id]).get(task.id, []),
            "open_alarms": repository.open_alarms_of(db, task.patient_id, task.institution_id),
            "outcomes": reminders.OUTCOMES, "reminder_states": reminders.STATUSES, **_charts(db, reg)}


def _charts(db: Any, reg: Any) -> dict[str, Any]:
    """Systolic BP and fasting glucose over time, with the target band (server-drawn SVG)."""
    sbp, glucose = outcomes.series(db, reg.id, reg.patient_id)
    bands = outcomes.bands()
    return {"sbp_chart": line_chart(sbp, bands["sbp"], height=200), "glucose_chart": line_chart(
        glucose, bands["glucose"], height=200), "bands": bands}


def _carried(last: Any) -> dict[str, Any]:
    """What a new visit starts from: the last visit's height, lifestyle and medication (the doctor changes
    what changed)."""
    detail = last.detail or {}
    form: dict[str, Any] = {k: ("" if v is None else f"{v:g}" if isinstance(v, float) else str(v))
                            for k, v in (detail.get("lifestyle") or {}).items()}
    form.update(height_cm=f"{last.height_cm:g}" if last.height_cm else "",
                medications="\n".join(detail.get("medications") or []), adherence=last.adherence or "")
    return form


@router.get("/chronic/follow-ups/{follow_up_id}")
def visit_page(request: Request, db: DB, subject: CurrentSubject, follow_up_id: int) -> Response:
    return render_page(request, "chronic/follow_up.html", _visit_context(db, subject, follow_up_id))


@router.post("/chronic/follow-ups/{follow_up_id}")
async def record_visit(request: Request, db: DB, subject: CurrentSubject, follow_up_id: int) -> Response:
    form = await request.form()
    values: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str) and k not in MULTI}
    lists = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in MULTI}
    try:
        task, reg = service.open_task(db, subject, follow_up_id)
        done_on = _date(values.get("done_on", ""))
        data = visit.read(reg.condition, values, lists, done_on)
        if values.get("done_on", "").strip() and done_on is None:
            data.errors["done_on"] = "日期格式应为 YYYY-MM-DD"
        nxt = service.record_follow_up(db, subject, follow_up_id, data, opened=(task, reg))
    except AppError as exc:
        db.rollback()
        if exc.status == 404:
            raise
        ctx = _visit_context(db, subject, follow_up_id)
        ctx.update(errors=errors_of(request, exc), form={**values, **lists})
        return render_page(request, "chronic/follow_up.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/chronic/follow-ups/{nxt.id}?done=recorded", status_code=303)


@router.post("/chronic/follow-ups/{follow_up_id}/calls")
async def log_call(request: Request, db: DB, subject: CurrentSubject, follow_up_id: int) -> Response:
    """A phone follow-up attempt (电话随访) with its outcome."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        reminders.log_call(db, subject, follow_up_id, values.get("outcome", ""), values.get("call_note"))
    except AppError as exc:
        db.rollback()
        if exc.status == 404:
            raise
        ctx = _visit_context(db, subject, follow_up_id)
        ctx.update(call_errors=errors_of(request, exc), call_form=values)
        return render_page(request, "chronic/follow_up.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/chronic/follow-ups/{follow_up_id}?done=called#calls", status_code=303)
