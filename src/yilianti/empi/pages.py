"""Identity review pages (患者身份核对): the queue, a candidate side by side, merges with unmerge."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.empi import explain, service
from yilianti.exceptions import AppError
from yilianti.kit.i18n import code_table
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id
from yilianti.web.forms import errors_of
from yilianti.web.render import mask_id, mask_phone, render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)

STATUS_LABELS = code_table("empi.status", {"open": "待核对", "confirmed": "已确认同一人", "rejected": "已确认不同人",
                                          "superseded": "已无需处理", "all": "全部"})
FIELD_LABELS = {"name": "姓名", "birth_date": "出生日期", "sex": "性别", "phone": "电话", "address": "住址",
                "resident_id": "身份证号", "total": "总分"}


BAND_LABELS = {"": "全部概率", "95": "≥ 95%", "80": "80%–95%", "50": "50%–80%", "low": "< 50%"}


def _filters(institution: int | None, band: str | None) -> dict[str, str]:
    """The queue's filters as query parameters (kept from the list to a pair and from a pair to the next)."""
    out = {}
    if institution is not None:
        out["institution"] = str(institution)
    if band in service.BANDS:
        out["band"] = str(band)
    return out


def _qs(params: dict[str, str]) -> str:
    return ("?" + urlencode(params)) if params else ""


def _day(d: date | None) -> str:
    return d.isoformat() if d else ""


def _list(request: Request, db: DB, subject: CurrentSubject, status: str, institution: int | None, band: str | None,
          bulk: dict[int, str | None] | None = None, bulk_action: str = "", status_code: int = 200) -> Response:
    """The review queue on the list kit: status, member and probability band, plus a name on either record
    (`q`), the days the pair was found, paging with the total and the xlsx export of the filtered pairs."""
    if status not in STATUS_LABELS:
        status = "open"
    band = band if band in service.BANDS else ""
    filters = _filters(institution, band)
    lp = replace(ListParams.of(request.query_params), status=status, extra=tuple(filters.items()))
    if bulk is not None:
        lp = replace(lp, page=1, export=False)
    result = service.queue(db, subject, status, institution_id=institution, band=band or None, lp=lp)
    rows = [(v, explain.probability(v.candidate), explain.strongest(v.candidate.explanation or {}))
            for v in result.items]
    if lp.export:
        head = ("编号", "匹配概率", "新登记", "出生日期", "登记机构", "平台已有", "出生日期", "登记机构", "主要依据",
                "状态", "发现时间")
        body = [(v.candidate.id, round(p * 100, 1) if p is not None else None, v.record.name, v.record.birth_date,
                 v.institution, v.other.name, v.other.birth_date, v.other_institution,
                 "；".join(t(request, r.label) for r in why), t(request, STATUS_LABELS.get(v.candidate.status, "")),
                 v.candidate.created_at) for v, p, why in rows]
        return xlsx_response(t(request, "患者身份核对"), [t(request, h) for h in head], body, "identity-review")
    return render_page(request, "empi/review_list.html", {
        "rows": rows, "result": result, "pg": result, "lp": lp, "status": status, "status_labels": STATUS_LABELS,
        "band": band, "band_labels": BAND_LABELS, "institution": institution,
        "members": service.waiting_by_member(db, subject), "filters": filters, "detail_qs": _qs(filters),
        "bulk": bulk, "bulk_action": bulk_action}, status_code)


@router.get("/empi/review")
def review_list(request: Request, db: DB, subject: CurrentSubject, status: str = "open",
                institution: Id | None = None, band: str = "") -> Response:
    return _list(request, db, subject, status, institution, band)


@router.post("/empi/review/bulk")
def review_bulk(request: Request, db: DB, subject: CurrentSubject, action: Annotated[str, Form()],
                ids: Annotated[list[int] | None, Form()] = None, note: Annotated[str, Form()] = "",
                institution: Annotated[int | None, Form()] = None, band: Annotated[str, Form()] = "") -> Response:
    """Merge / not-a-match several pairs: each through the single decision (audited), per-pair outcome shown."""
    outcome = service.decide_many(db, subject, ids or [], action, note)
    return _list(request, db, subject, "open", institution, band, outcome, action)


def _detail(request: Request, db: DB, subject: CurrentSubject, candidate_id: Id, errors: dict[str, str] | None = None,
            status_code: int = 200, institution: int | None = None, band: str | None = None) -> Response:
    view = service.get_candidate(db, subject, candidate_id)
    c = view.candidate
    why = {r.field: r for r in explain.reasons(c.explanation or {})}
    a, b = view.record, view.other
    shown = [("name", a.name or "", b.name or ""), ("birth_date", _day(a.birth_date), _day(b.birth_date)),
             ("sex", t(request, a.sex) if a.sex else "", t(request, b.sex) if b.sex else ""),
             ("phone", mask_phone(a.phone), mask_phone(b.phone)), ("address", a.address or "", b.address or ""),
             ("resident_id", mask_id(a.rid), mask_id(b.rid))]
    rows = [(key, *explain.diff(x, y), why.get(key)) for key, x, y in shown]
    filters = _filters(institution, band)
    nxt = service.next_open(db, subject, c, institution_id=institution, band=band) if c.status == "open" else None
    return render_page(request, "empi/review_detail.html", {
        "v": view, "c": c, "rows": rows, "probability": explain.probability(c), "field_labels": FIELD_LABELS,
        "status_labels": STATUS_LABELS, "errors": errors or {}, "filters": filters, "list_qs": _qs(filters),
        "next_id": nxt, "next_qs": _qs(filters)}, status_code)


@router.get("/empi/review/{candidate_id}")
def review_detail(request: Request, candidate_id: Id, db: DB, subject: CurrentSubject,
                  institution: Id | None = None, band: str = "") -> Response:
    return _detail(request, db, subject, candidate_id, institution=institution, band=band)


def _decide(request: Request, db: DB, subject: CurrentSubject, candidate_id: Id, action: str, note: str,
            institution: int | None, band: str) -> Response:
    """Confirm (merge) or reject (do-not-match) a candidate, then on to the next pair in the queue's order;
    a refusal re-renders the pair with the message."""
    decide = service.confirm if action == "confirmed" else service.reject
    try:
        decide(db, subject, candidate_id, note)
    except AppError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return _detail(request, db, subject, candidate_id, errors_of(request, exc), exc.status, institution, band)
    filters = _filters(institution, band)
    cand = service.get_candidate(db, subject, candidate_id, audit_read=False).candidate
    nxt = service.next_open(db, subject, cand, institution_id=institution, band=band or None)
    if nxt is None:
        return RedirectResponse("/empi/review" + _qs({**filters, "done": action}), status_code=303)
    return RedirectResponse(f"/empi/review/{nxt}" + _qs({**filters, "done": action}), status_code=303)


@router.post("/empi/review/{candidate_id}/confirm")
def review_confirm(request: Request, candidate_id: Id, db: DB, subject: CurrentSubject,
                   note: Annotated[str, Form()] = "", institution: Annotated[int | None, Form()] = None,
                   band: Annotated[str, Form()] = "") -> Response:
    return _decide(request, db, subject, candidate_id, "confirmed", note, institution, band)


@router.post("/empi/review/{candidate_id}/reject")
def review_reject(request: Request, candidate_id: Id, db: DB, subject: CurrentSubject,
                  note: Annotated[str, Form()] = "", institution: Annotated[int | None, Form()] = None,
                  band: Annotated[str, Form()] = "") -> Response:
    return _decide(request, db, subject, candidate_id, "rejected", note, institution, band)


@router.get("/empi/merges")
def merge_list(request: Request, db: DB, subject: CurrentSubject) -> Response:
    return render_page(request, "empi/merges.html", {"rows": service.merges(db, subject), "errors": {}})


@router.post("/empi/merges/{event_id}/unmerge")
def merge_undo(request: Request, event_id: Id, db: DB, subject: CurrentSubject,
               reason: Annotated[str, Form()] = "") -> Response:
    try:
        service.unmerge(db, subject, event_id, reason)
    except AppError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return render_page(request, "empi/merges.html", {
            "rows": service.merges(db, subject), "errors": errors_of(request, exc),
            "failed": event_id}, exc.status)
    return RedirectResponse("/empi/merges?done=1", status_code=303)
