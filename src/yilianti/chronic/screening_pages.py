"""Screening pages: the rounds with the suggestions awaiting the doctor (enrol, refer, dismiss), one round's
readings recorded resident by resident, and the coverage of each village (who 35+ has no BP this year)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.chronic import forms, repository, screening
from yilianti.exceptions import AppError, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.patients import service as patients
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page

router = APIRouter(include_in_schema=False)


def _index_context(request: Request, db: Session, subject: Subject) -> dict[str, Any]:
    inst = subject.acting_institution_id
    if inst is None or not subject.is_clinical:
        raise NotFound()
    page = opt_int(request.query_params.get("page")) or 1
    rounds = kit.page(db, repository.screening_rounds(inst), page, 20)
    return {"rounds": rounds, "counts": repository.round_counts(db, [r.id for r in rounds.items]),
            "pending": kit.page(db, repository.screening_rows(subject, inst, outcome="pending"), 1, 100, scalars=False),
            "teams": repository.teams_of(db, inst), "kinds": screening.KINDS, "today": clock.today_local()}


@router.get("/chronic/screening")
def screening_page(request: Request, db: DB, subject: Clinical) -> Response:
    return render_page(request, "chronic/screening.html", _index_context(request, db, subject))


@router.post("/chronic/screening")
async def create_round(request: Request, db: DB, subject: Clinical) -> Response:
    values = await forms.values(request)
    errors: dict[str, str] = {}
    held_on = forms.day(values, "held_on", errors)
    try:
        if errors:
            raise InvalidInput(fields=errors)
        r = screening.create_round(db, subject, values.get("kind", ""), held_on, opt_int(values.get("team_id")),
                                   values.get("village"))
    except AppError as exc:
        db.rollback()
        ctx = _index_context(request, db, subject)
        ctx.update(round_errors=errors_of(request, exc), round_form=values)
        return render_page(request, "chronic/screening.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/chronic/screening/{r.id}?done=round", status_code=303)


def _round_context(db: Session, subject: Subject, round_id: int) -> dict[str, Any]:
    r = screening.require_round(db, subject, round_id)
    return {"round": r, "rows": kit.page(db, repository.screening_rows(subject, r.institution_id, round_id=r.id),
                                         1, 500, scalars=False).items,
            "team": next((x for x in repository.teams_of(db, r.institution_id) if x.id == r.team_id), None)}


@router.get("/chronic/screening/coverage")
def coverage_page(request: Request, db: DB, subject: Clinical, kind: str = "bp35") -> Response:
    kind = kind if kind in screening.COVERAGE else "bp35"
    return render_page(request, "chronic/coverage.html", {"villages": screening.coverage(db, subject, kind=kind),
                                                          "year": clock.today_local().year, "kind": kind,
                                                          "kinds": screening.COVERAGE})


@router.get("/chronic/screening/{round_id}")
def round_page(request: Request, db: DB, subject: Clinical, round_id: int) -> Response:
    return render_page(request, "chronic/screening_round.html", _round_context(db, subject, round_id))


@router.post("/chronic/screening/{round_id}/records")
async def record(request: Request, db: DB, subject: Clinical, round_id: int) -> Response:
    values = await forms.values(request)
    errors: dict[str, str] = {}
    data = screening.ReadingIn(patient_id=opt_int(values.get("patient_id")), sbp=forms.integer(values, "sbp", errors),
                               dbp=forms.integer(values, "dbp", errors),
                               fasting_glucose=forms.decimal(values, "fasting_glucose", errors),
                               measured_on=forms.day(values, "measured_on", errors), errors=errors)
    try:
        rec = screening.record(db, subject, round_id, data)
    except AppError as exc:
        db.rollback()
        if exc.status == 404:
            raise
        ctx = _round_context(db, subject, round_id)
        ctx.update(errors=errors_of(request, exc), form=values,
                   patient=patients.picked(db, subject, data.patient_id) if data.patient_id else None)
        return render_page(request, "chronic/screening_round.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/chronic/screening/{round_id}?done=screened_{rec.finding}#record-{rec.id}",
                            status_code=303)


@router.post("/chronic/screening/records/{record_id}/{action}")
async def decide(request: Request, db: DB, subject: Clinical, record_id: int, action: str) -> Response:
    values = await forms.values(request)
    try:
        rec = screening.decide(db, subject, record_id, action, values.get("note"))
    except AppError as exc:
        db.rollback()
        if exc.status == 404:
            raise
        ctx = _index_context(request, db, subject)
        ctx.update(decide_errors=errors_of(request, exc), decide_form={**values, "record_id": str(record_id)})
        return render_page(request, "chronic/screening.html", ctx, status_code=exc.status)
    if action == "refer":
        return RedirectResponse("/referrals/new?" + urlencode(screening.referral_prefill(rec)), status_code=303)
    return RedirectResponse(f"/chronic/screening?done=decided_{action}#pending", status_code=303)
