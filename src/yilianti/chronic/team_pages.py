"""Family-doctor team pages: the team's members (add with a role, make team lead, remove), its contracts (search,
state, period, paging, xlsx) with renewal and termination, and the signing rates of every team."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.chronic import forms, repository, screening, service, teams
from yilianti.exceptions import AppError, InvalidInput
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams, export_rows
from yilianti.models.chronic import FamilyDoctorContract
from yilianti.models.patient import Patient
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)


def _team_context(request: Request, db: Session, subject: Subject, team_id: int) -> dict[str, Any]:
    team = service.require_team(db, subject, team_id)
    today = clock.today_local()
    lp = ListParams.of(request.query_params).only(teams.CONTRACT_STATES)
    stmt = lp.apply(repository.contract_rows(subject, team.id), search=[Patient.name], day=FamilyDoctorContract.start_on,
                    status=repository.contract_state(today, today + timedelta(days=teams.EXPIRING_DAYS)))
    members = repository.members_of(db, team.id)
    taken = {m.user_id for m, _ in members}
    return {"team": team, "members": members, "lp": lp, "stmt": stmt, "today": today,
            "candidates": [c for c in repository.member_candidates(db, team.institution_id, today)
                           if c[0] not in taken],
            "roles": teams.ROLES, "end_reasons": teams.END_REASONS, "packages": teams.PACKAGES,
            "states": list(teams.CONTRACT_STATES.items()), "state": teams.state,
            **_village_figures(db, subject, team.id)}


def _village_figures(db: Session, subject: Subject, team_id: int | None = None) -> dict[str, Any]:
    """Per village (of one team, or every team): signing rates and the 65+ annual health-check coverage."""
    return {"village_rows": teams.village_rates(db, subject, team_id=team_id),
            "checks": {c.village: c for c in screening.coverage(db, subject, limit=0, kind="elderly65")}}


@router.get("/chronic/teams/{team_id}")
def team_page(request: Request, db: DB, subject: Clinical, team_id: int) -> Response:
    ctx = _team_context(request, db, subject, team_id)
    lp, stmt = ctx["lp"], ctx["stmt"]
    if lp.export:
        rows = [(p.name, t(request, "chronic.package." + c.package), c.start_on, c.end_on,
                 t(request, "chronic.contract_state." + teams.state(c, ctx["today"])))
                for c, p in export_rows(db, stmt, scalars=False)]
        head = [t(request, h) for h in ("居民", "服务包", "签约日期", "到期日期", "状态")]
        return xlsx_response(t(request, "签约居民"), head, rows, "contracts")
    ctx["pg"] = kit.page(db, stmt, lp.page, lp.per_page, scalars=False)
    return render_page(request, "chronic/team.html", ctx)


def _back(team_id: int, done: str, anchor: str = "") -> Response:
    return RedirectResponse(f"/chronic/teams/{team_id}?done={done}{anchor}", status_code=303)


def _again(request: Request, db: Session, subject: Subject, team_id: int, exc: AppError, key: str,
           values: dict[str, str]) -> Response:
    db.rollback()
    ctx = _team_context(request, db, subject, team_id)
    ctx["pg"] = kit.page(db, ctx["stmt"], ctx["lp"].page, ctx["lp"].per_page, scalars=False)
    ctx.update({f"{key}_errors": errors_of(request, exc), f"{key}_form": values})
    return render_page(request, "chronic/team.html", ctx, status_code=exc.status)


@router.post("/chronic/teams/{team_id}/members")
async def add_member(request: Request, db: DB, subject: Clinical, team_id: int) -> Response:
    values = await forms.values(request)
    try:
        teams.add_member(db, subject, team_id, opt_int(values.get("user_id")), values.get("role", ""),
                         lead=values.get("lead") == "1")
    except AppError as exc:
        if exc.status == 404:
            raise
        return _again(request, db, subject, team_id, exc, "member", values)
    return _back(team_id, "member_added", "#members")


@router.post("/chronic/teams/{team_id}/members/{member_id}/{action}")
async def member_action(request: Request, db: DB, subject: Clinical, team_id: int, member_id: int,
                        action: str) -> Response:
    try:
        if action == "lead":
            teams.set_lead(db, subject, team_id, member_id)
        elif action == "remove":
            teams.remove_member(db, subject, team_id, member_id)
        else:
            return Response(status_code=404)
    except AppError as exc:
        if exc.status == 404:
            raise
        return _again(request, db, subject, team_id, exc, "member", {})
    return _back(team_id, "member_" + ("lead" if action == "lead" else "removed"), "#members")


@router.post("/chronic/contracts/{contract_id}/{action}")
async def contract_action(request: Request, db: DB, subject: Clinical, contract_id: int, action: str) -> Response:
    values = await forms.values(request)
    c = teams.require_contract(db, subject, contract_id)
    errors: dict[str, str] = {}
    try:
        if action == "renew":
            teams.renew(db, subject, c.id, values.get("package") or None)
        elif action == "terminate":
            on = forms.day(values, "terminated_on", errors)
            if errors:
                raise InvalidInput(fields=errors)
            teams.terminate(db, subject, c.id, values.get("reason", ""), values.get("note"), on)
        else:
            return Response(status_code=404)
    except AppError as exc:
        if exc.status == 404:
            raise
        values["contract_id"] = str(contract_id)
        return _again(request, db, subject, c.team_id, exc, "contract", values)
    return _back(c.team_id, "contract_renewed" if action == "renew" else "contract_terminated", "#contracts")


@router.get("/chronic/signing")
def signing_page(request: Request, db: DB, subject: Clinical) -> Response:
    rows = teams.signing_rates(db, subject)
    if request.query_params.get("format") == "xlsx":
        head = [t(request, "家庭医生团队")] + [t(request, "chronic.population." + p) for p in teams.POPULATIONS]
        body = [[r.name or t(request, "全机构")] + [
            f"{x.signed}/{x.residents}" + (f" ({x.percent}%)" if x.percent is not None else "")
            for x in r.rates.values()] for r in rows]
        return xlsx_response(t(request, "签约率"), head, body, "signing-rates")
    return render_page(request, "chronic/signing.html", {"rows": rows, "populations": teams.POPULATIONS,
                                                         "today": clock.today_local(),
                                                         **_village_figures(db, subject)})
