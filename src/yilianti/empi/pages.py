"""Identity review pages (患者身份核对): the queue, a candidate side by side, merges with unmerge."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.empi import service
from yilianti.exceptions import AppError
from yilianti.web.forms import errors_of
from yilianti.web.render import render_page

router = APIRouter(include_in_schema=False)

STATUS_LABELS = {"open": "待核对", "confirmed": "已确认同一人", "rejected": "已确认不同人",
                 "superseded": "已无需处理", "all": "全部"}
FIELD_LABELS = {"name": "姓名", "birth_date": "出生日期", "sex": "性别", "phone": "电话", "address": "住址",
                "resident_id": "身份证号", "total": "总分"}


@router.get("/empi/review")
def review_list(request: Request, db: DB, subject: CurrentSubject, status: str = "open") -> Response:
    if status not in STATUS_LABELS:
        status = "open"
    rows = service.candidates(db, subject, status)
    return render_page(request, "empi/review_list.html", {
        "rows": rows, "status": status, "status_labels": STATUS_LABELS})


def _detail(request: Request, db: DB, subject: CurrentSubject, candidate_id: int, errors: dict[str, str] | None = None,
            status_code: int = 200) -> Response:
    view = service.get_candidate(db, subject, candidate_id)
    return render_page(request, "empi/review_detail.html", {
        "v": view, "c": view.candidate, "field_labels": FIELD_LABELS, "status_labels": STATUS_LABELS,
        "errors": errors or {}}, status_code)


@router.get("/empi/review/{candidate_id}")
def review_detail(request: Request, candidate_id: int, db: DB, subject: CurrentSubject) -> Response:
    return _detail(request, db, subject, candidate_id)


def _decide(request: Request, db: DB, subject: CurrentSubject, candidate_id: int, action: str, note: str) -> Response:
    """Confirm (merge) or reject (do-not-match) a candidate; a refusal re-renders the pair with the message."""
    decide = service.confirm if action == "confirmed" else service.reject
    try:
        decide(db, subject, candidate_id, note)
    except AppError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return _detail(request, db, subject, candidate_id, errors_of(request, exc), exc.status)
    return RedirectResponse(f"/empi/review/{candidate_id}?done={action}", status_code=303)


@router.post("/empi/review/{candidate_id}/confirm")
def review_confirm(request: Request, candidate_id: int, db: DB, subject: CurrentSubject,
                   note: Annotated[str, Form()] = "") -> Response:
    return _decide(request, db, subject, candidate_id, "confirmed", note)


@router.post("/empi/review/{candidate_id}/reject")
def review_reject(request: Request, candidate_id: int, db: DB, subject: CurrentSubject,
                  note: Annotated[str, Form()] = "") -> Response:
    return _decide(request, db, subject, candidate_id, "rejected", note)


@router.get("/empi/merges")
def merge_list(request: Request, db: DB, subject: CurrentSubject) -> Response:
    return render_page(request, "empi/merges.html", {"rows": service.merges(db, subject), "errors": {}})


@router.post("/empi/merges/{event_id}/unmerge")
def merge_undo(request: Request, event_id: int, db: DB, subject: CurrentSubject,
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
