"""Audit log search and break-glass review pages."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.audit import display, repository, service
from yilianti.audit.repository import AuditFilter
from yilianti.auth.deps import DB, require
from yilianti.authz.subject import Subject
from yilianti.exceptions import AppError, request_locale
from yilianti.kit.schemas import Id, PageNo
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page

router = APIRouter(include_in_schema=False)
Auditor = Annotated[Subject, Depends(require("system_admin", "auditor", "alliance_admin", "institution_admin"))]


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/audit")
def audit_search(request: Request, db: DB, subject: Auditor, username: str = "", action: str = "",
                 resource_type: str = "", patient_id: str = "", institution_id: str = "",
                 date_from: str = "", date_to: str = "", page: PageNo = 1) -> Response:
    f = AuditFilter(username, action, resource_type, opt_int(patient_id), opt_int(institution_id),
                      _date(date_from), _date(date_to))
    result = service.search(db, subject, f, page)
    return render_page(request, "audit/search.html", {
        "events": result.items, "shown": [display.show(e, request_locale(request)) for e in result.items], "f": f, "page": result.page, "has_next": result.has_next,
        "raw": {"date_from": date_from, "date_to": date_to, "patient_id": patient_id,
                "institution_id": institution_id}})


@router.get("/audit/break-glass")
def break_glass_list(request: Request, db: DB, subject: Auditor, all: int = 0) -> Response:
    return render_page(request, "audit/break_glass.html",
                       {"grants": repository.break_glass_to_review(db, subject, bool(all)), "all": all, "errors": {}})


@router.post("/audit/break-glass/{grant_id}/review")
def break_glass_review(request: Request, grant_id: Id, db: DB, subject: Auditor,
                       outcome: Annotated[str, Form()] = "", revoke: Annotated[str, Form()] = "") -> Response:
    try:
        service.review_break_glass(db, subject, grant_id, outcome, revoke == "1")
    except AppError as exc:
        if exc.status == 404:
            raise
        return render_page(request, "audit/break_glass.html", {
            "grants": repository.break_glass_to_review(db, subject), "all": 0, "errors": errors_of(request, exc),
            "error_grant": grant_id}, exc.status)
    return RedirectResponse("/audit/break-glass", status_code=303)
