"""Audit log search and break-glass review pages."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.alliance.repository import institution_names
from yilianti.audit import display, repository, service
from yilianti.audit.repository import AuditFilter
from yilianti.auth.deps import DB, ReadDB, require
from yilianti.authz.subject import Subject
from yilianti.exceptions import AppError, request_locale
from yilianti.kit import listing
from yilianti.kit.i18n import codes, label
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)
Auditor = Annotated[Subject, Depends(require("system_admin", "auditor", "alliance_admin", "institution_admin"))]


AUDIT_PARAMS = ("username", "action", "resource_type", "patient_id", "institution_id", "archived")


@router.get("/audit")
def audit_search(request: Request, db: DB, reads: ReadDB, subject: Auditor, username: str = "", action: str = "",
                 resource_type: str = "", patient_id: str = "", institution_id: str = "",
                 date_from: str = "", date_to: str = "", archived: str = "") -> Response:
    """The audit log on the list kit: `q` (a username or an object's id), the days (`from`/`to`; the older
    `date_from`/`date_to` links still work), the action, paging with the total and the xlsx export."""
    lp = ListParams.of(request.query_params, keep=AUDIT_PARAMS)
    if not lp.start and not lp.end and (date_from or date_to):
        lp = replace(lp, start=listing.parse_day(date_from), end=listing.parse_day(date_to))
    f = AuditFilter(username, action, resource_type, opt_int(patient_id), opt_int(institution_id), lp.start, lp.end)
    locale = request_locale(request)
    if lp.export:  # every event the filters match (up to the export limit), as the page labels them
        events = service.search(db, subject, f, 1, listing.EXPORT_MAX_ROWS, q=lp.q, reads=reads,
                                archived=archived == "1").items
        head = ("时间", "用户", "代表机构", "操作", "对象", "患者", "依据", "理由/详情", "IP")
        names = institution_names(db, (e.acting_institution_id for e in events))
        body = []
        for e in events:
            s = display.show(e, locale)
            changes = "; ".join(f"{ln.field}: {ln.before} → {ln.after}" if ln.before is not None
                                else f"{ln.field}: {ln.after}" for ln in s.lines)
            body.append((e.at, e.username or "", names.get(e.acting_institution_id or 0, ""), s.action, f"{s.resource} {e.resource_id or ''}",
                         e.patient_id, label("access_basis", e.access_basis, locale) if e.access_basis else "",
                         " ".join(x for x in (e.reason or "", changes) if x), e.ip or ""))
        return xlsx_response(t(request, "审计日志"), [t(request, h) for h in head], body, "audit")
    pg = service.search(db, subject, f, lp.page, lp.per_page, q=lp.q, count=True, reads=reads,
                        archived=archived == "1")
    actions = [(a, display.action_label(a, locale)) for a in codes("audit.action")]
    if action and action not in {a for a, _ in actions}:
        actions.insert(0, (action, display.action_label(action, locale)))
    return render_page(request, "audit/search.html", {
        "lp": lp, "pg": pg, "events": pg.items, "shown": [display.show(e, locale) for e in pg.items], "f": f,
        "actions": actions, "raw": {"patient_id": patient_id, "institution_id": institution_id},
        "institutions": institution_names(db, (e.acting_institution_id for e in pg.items)),
        "archived": archived == "1",
        "replica_max_lag": reads.info.get("replica_max_lag")})


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
