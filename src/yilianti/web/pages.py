"""Home page: the workbench (工作台) of the acting user's roles."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.alliance import repository as alliances
from yilianti.auth.deps import DB, optional_subject
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import Institution
from yilianti.patients import repository as patients
from yilianti.web.render import render_page
from yilianti.workbench import service as workbench

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, db: DB) -> Response:
    subject = optional_subject(request, db)
    if subject is None:
        return RedirectResponse("/login", status_code=303)
    ctx: dict[str, object] = {"wb": workbench.for_subject(db, subject), "today": clock.today_local()}
    if subject.acting_institution_id:
        ctx["institution"] = kit.get(db, Institution, subject.acting_institution_id)
        ctx["my_alliances"] = alliances.alliances_with_role_of(db, subject.acting_institution_id)
    if subject.is_clinical:
        ctx["patient_count"] = patients.count_readable(db, subject)
    if subject.has("system_admin", "alliance_admin", "institution_admin", "auditor"):
        ctx["alliance_count"] = alliances.count_alliances(db)
        ctx["institution_count"] = alliances.count_institutions(db)
    return render_page(request, "home.html", ctx)
