"""Audit log search and break-glass review pages."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.alliance.repository import (
    all_alliances,
    department_names,
    institution_names,
    institutions_among,
)
from yilianti.audit import display, repository, service
from yilianti.audit.repository import AuditFilter
from yilianti.auth.deps import DB, ReadDB, require
from yilianti.auth.repository import display_names
from yilianti.authz.subject import Subject
from yilianti.exceptions import AppError, request_locale
from yilianti.kit import listing
from yilianti.kit.i18n import codes, label
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id
from yilianti.models.audit import AuditEvent
from yilianti.patients import repository as patients_repo
from yilianti.patients import service as patients
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)
Auditor = Annotated[Subject, Depends(require("system_admin", "auditor", "alliance_admin", "institution_admin"))]


AUDIT_PARAMS = ("username", "action", "resource_type", "patient_id", "institution_id", "archived")
PICK = "/audit/patients/pick"  # the audit log's own patient picker (patients.service.find_for_audit)
PICK_LIMIT = 8


def _refs(db: DB, events: list[AuditEvent]) -> display.Refs:
    """The names of the institutions, users, departments and alliances the events' details name by id."""
    wanted = display.refs_wanted(events)
    refs: display.Refs = {"institution": institution_names(db, wanted.get("institution", ())),
                          "user": display_names(db, wanted.get("user", ())),
                          "department": department_names(db, wanted.get("department", ()))}
    if wanted.get("alliance"):
        refs["alliance"] = {a.id: a.name for a in all_alliances(db) if a.id in wanted["alliance"]}
    return refs


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
        refs = _refs(db, events)
        body = []
        for e in events:
            s = display.show(e, locale, refs)
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
    refs = _refs(db, pg.items)
    scoped = [(i.id, i.name) for i in institutions_among(db, repository.visible_scope(db, subject))]
    chosen = patients.find_for_audit(db, subject, patient_id=f.patient_id, limit=1) if f.patient_id else []
    return render_page(request, "audit/search.html", {
        "lp": lp, "pg": pg, "events": pg.items, "shown": [display.show(e, locale, refs) for e in pg.items], "f": f,
        "actions": actions, "raw": {"patient_id": patient_id, "institution_id": institution_id},
        "chosen": chosen[0] if chosen else None, "pick": PICK,
        "patient_names": {i: p.name for i, p in patients_repo.patients_by_id(db, (e.patient_id for e in pg.items)).items()},
        # the institution filter: those the auditor's scope covers, by name (an id in the URL still filters)
        "scope_institutions": scoped,
        "other_institution": institution_names(db, [f.institution_id]).get(f.institution_id or 0)
        if f.institution_id and f.institution_id not in {i for i, _ in scoped} else None,
        "institutions": institution_names(db, (e.acting_institution_id for e in pg.items)),
        "archived": archived == "1",
        "replica_max_lag": reads.info.get("replica_max_lag")})


@router.get(PICK)
def audit_patient_pick(request: Request, db: DB, subject: Auditor, pick_q: str = "") -> Response:
    """The audit log's patient filter: matches by name, 拼音首字母, the last four or a whole resident ID, among
    the patients named by events the auditor may see (audited as a search from the audit log)."""
    q = pick_q.strip()[:64]
    rows = patients.find_for_audit(db, subject, q, limit=PICK_LIMIT + 1) if q else []
    return render_page(request, "patients/_pick_results.html", {
        "patients": rows[:PICK_LIMIT], "more": len(rows) > PICK_LIMIT, "q": q, "field": "patient_id", "base": PICK,
        "none_text": t(request, "审计范围内没有符合条件的患者"),
        "rids": patients_repo.resident_ids(db, [p.id for p in rows])})


@router.get(PICK + "/chosen")
def audit_patient_chosen(request: Request, db: DB, subject: Auditor, id: str = "") -> Response:
    """The audit filter with one patient chosen (only one the auditor's scope names)."""
    pid = opt_int(id)
    found = patients.find_for_audit(db, subject, patient_id=pid, limit=1) if pid else []
    return _picker(request, found[0] if found else None)


@router.get(PICK + "/clear")
def audit_patient_clear(request: Request, subject: Auditor) -> Response:
    return _picker(request, None)


def _picker(request: Request, patient: object) -> Response:
    response = render_page(request, "patients/_picker_fragment.html", {
        "patient": patient, "field": "patient_id", "base": PICK, "required": False,
        "picker_label": t(request, "患者")})
    response.headers["HX-Trigger-After-Settle"] = json.dumps({"patient-chosen": {
        "field": "patient_id", "id": getattr(patient, "id", None)}})
    return response


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
