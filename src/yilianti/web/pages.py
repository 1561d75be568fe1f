"""Home page per role."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from yilianti.alliance.repository import current_on
from yilianti.auth.deps import DB, optional_subject
from yilianti.authz import policy
from yilianti.kit import clock
from yilianti.models.alliance import Alliance, Institution, Membership
from yilianti.models.patient import AccessGrant, Patient
from yilianti.web.render import render_page

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, db: DB) -> Response:
    subject = optional_subject(request, db)
    if subject is None:
        return RedirectResponse("/login", status_code=303)
    ctx: dict[str, object] = {}
    if subject.acting_institution_id:
        inst = db.get(Institution, subject.acting_institution_id)
        ctx["institution"] = inst
        ctx["my_alliances"] = db.execute(
            select(Alliance, Membership.role).join(Membership, Membership.alliance_id == Alliance.id)
            .where(Membership.institution_id == subject.acting_institution_id, current_on(clock.today_local()))
            .order_by(Alliance.name)
        ).all()
    if subject.is_clinical:
        ctx["patient_count"] = db.scalar(select(func.count()).select_from(Patient).where(policy.readable(subject)))
    if subject.has("system_admin", "alliance_admin", "institution_admin", "auditor"):
        ctx["alliance_count"] = db.scalar(select(func.count()).select_from(Alliance))
        ctx["institution_count"] = db.scalar(select(func.count()).select_from(Institution))
        ctx["break_glass_to_review"] = db.scalar(
            select(func.count()).select_from(AccessGrant).where(
                AccessGrant.needs_review.is_(True), AccessGrant.reviewed_at.is_(None)))
    ctx["today"] = clock.today_local()
    return render_page(request, "home.html", ctx)
