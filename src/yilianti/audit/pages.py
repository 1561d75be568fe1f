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
from yilianti.kit import listing
from yilianti.kit.i18n import label
from yilianti.kit.schemas import Id, PageNo
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response

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
                 date_from: str = "", date_to: str = "", page: PageNo = 1, format: str = "") -> Response:
    f = AuditFilter(username, action, resource_type, opt_int(patient_id), opt_int(institution_id),
                      _date(date_from), _date(date_to))
    if format == "xlsx":  # every event the filters match (up to the export limit), as the page labels them
        events = service.search(db, subject, f, 1, listing.EXPORT_MAX_ROWS).items
        locale = request_locale(request)
        head = ("时间", "用户", "代表机构", "操作", "对象", "患者", "依据", "理由/详情", "IP")
        body = []
        for e in events:
            s = display.show(e, locale)
            changes = "; ".join(f"{ln.field}: {ln.before} → {ln.after}" if ln.before is not None
                                else f"{ln.field}: {ln.after}" for ln in s.lines)
            body.append((e.at, e.username or "", e.acting_institution_id, s.action, f"{s.resource} {e.resource_id or ''}",
                         e.patient_id, label("access_basis", e.access_basis, locale) if e.access_basis else "",
                         " ".join(x for x in (e.reason or "", changes) if x), e.ip or ""))
        return xlsx_response(t(request, "审计日志"), [t(request, h) for h in head], body, "audit")
    result = service.search(db, subject, f, page)
    url = request.url.include_query_params(format="xlsx").remove_query_params("page")
    export = f"{url.path}?{url.query}"
    return render_page(request, "audit/search.html", {"export_url": export,
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
