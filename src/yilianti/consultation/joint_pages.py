"""Joint ward (联合病房) pages: wards of the acting institution, team, shared patient list, rounds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from yilianti.alliance import repository as alliances
from yilianti.auth import repository as accounts
from yilianti.auth.deps import DB, CurrentSubject
from yilianti.authz.subject import Subject
from yilianti.consultation import joint, repository
from yilianti.exceptions import AppError, InvalidInput
from yilianti.kit.schemas import Id
from yilianti.scheduling import repository as sched_repo
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t
from yilianti.workforce import repository as workforce

router = APIRouter(include_in_schema=False)


def _names(db: Session, ids: set[int]) -> dict[int, str]:
    return alliances.institution_names(db, ids)


@router.get("/joint-wards")
def ward_list(request: Request, db: DB, subject: CurrentSubject) -> Response:
    wards = joint.wards_for(db, subject)
    own = subject.acting_institution_id
    return render_page(request, "consultation/joint_list.html", {
        "wards": wards, "names": _names(db, {w.institution_id for w in wards} | {w.lead_institution_id for w in wards}),
        "can_create": subject.has(*joint.MANAGER_ROLES) and own is not None,
        "leads": [i for i in sched_repo.partner_institutions(db, own) if i.id != own] if own else [],
        "errors": {}})


@router.post("/joint-wards")
async def ward_create(request: Request, db: DB, subject: CurrentSubject) -> Response:
    form = await request.form()
    try:
        with db.begin_nested():
            ward = joint.create_ward(db, subject, joint.WardIn(
                name=str(form.get("name", "")), lead_institution_id=opt_int(str(form.get("lead_institution_id", ""))) or 0,
                beds=opt_int(str(form.get("beds", ""))) or 0, specialty=str(form.get("specialty", "")) or None))
    except AppError as exc:
        if exc.status not in (403, 422):
            raise
        return render_page(request, "consultation/joint_list.html", {
            "wards": joint.wards_for(db, subject), "names": {}, "can_create": True, "leads": [],
            "errors": errors_of(request, exc)}, exc.status)
    return RedirectResponse(f"/joint-wards/{ward.id}", status_code=303)


def _ward_context(db: Session, subject: Subject, ward_id: Id) -> dict[str, Any]:
    ward, team = joint.get_ward(db, subject, ward_id)
    rows = joint.admissions(db, subject, ward.id)
    rounds = repository.rounds_by_admission(db, [a.id for a, _ in rows])
    users = accounts.display_names(db, {r.user_id for rs in rounds.values() for r in rs})
    candidates = workforce.active_practitioners_of(db, [ward.institution_id, ward.lead_institution_id]) \
        if subject.has(*joint.MANAGER_ROLES) else []
    return {"ward": ward, "team": team, "members": repository.ward_members(db, ward.id), "admissions": rows, "rounds": rounds,
            "users": users, "names": _names(db, {ward.institution_id, ward.lead_institution_id}),
            "can_admit": team == "local" and subject.is_clinical,
            "candidates": candidates, "is_manager": subject.has(*joint.MANAGER_ROLES), "errors": {}, "error": None}


@router.get("/joint-wards/{ward_id}")
def ward_view(request: Request, ward_id: Id, db: DB, subject: CurrentSubject) -> Response:
    return render_page(request, "consultation/joint_ward.html", _ward_context(db, subject, ward_id))


@router.post("/joint-wards/{ward_id}/{action}")
async def ward_act(request: Request, ward_id: Id, action: str, db: DB, subject: CurrentSubject) -> Response:
    form = await request.form()

    def value(k: str) -> str:
        return str(form.get(k, "") or "")

    try:
        with db.begin_nested():
            match action:
                case "member":
                    joint.add_member(db, subject, ward_id, opt_int(value("practitioner_id")) or 0, value("role") or None)
                case "admit":
                    pid = opt_int(value("patient_id"))
                    if pid is None:
                        joint.get_ward(db, subject, ward_id)
                        raise InvalidInput(fields={"patient_id": "必填"})
                    joint.admit(db, subject, ward_id, pid, bed_no=value("bed_no"), diagnosis=value("diagnosis"))
                case "round":
                    joint.add_round(db, subject, opt_int(value("admission_id")) or 0, value("note"))
                case "discharge":
                    joint.discharge(db, subject, opt_int(value("admission_id")) or 0, value("note"))
                case _:
                    joint.get_ward(db, subject, ward_id)
                    raise InvalidInput(fields={"action": "取值不在允许范围内"})
    except AppError as exc:
        if exc.status not in (403, 409, 422):
            raise
        db.expire_all()
        ctx = _ward_context(db, subject, ward_id)
        ctx["errors"] = errors_of(request, exc)
        ctx["error"] = t(request, exc.message, **exc.params) if exc.status != 422 else \
            "；".join(ctx["errors"].values())
        return render_page(request, "consultation/joint_ward.html", ctx, exc.status)
    return RedirectResponse(f"/joint-wards/{ward_id}", status_code=303)
