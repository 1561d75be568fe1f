"""In-app notifications page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.kit.schemas import Id
from yilianti.notifications import service
from yilianti.web.render import render_page

router = APIRouter(include_in_schema=False)


@router.get("/notifications")
def notifications(request: Request, db: DB, subject: CurrentSubject) -> Response:
    return render_page(request, "notifications.html", {"items": service.list_for(db, subject),
                                                       "unread_count": service.unread_count(db, subject)})


@router.post("/notifications/read-all")
def mark_all_read(db: DB, subject: CurrentSubject) -> Response:
    """Every unread notification of the reader marked read at once (the API's POST /notifications/read-all)."""
    service.mark_all_read(db, subject)
    return RedirectResponse("/notifications?done=read_all", status_code=303)


@router.post("/notifications/{notification_id}/read")
def mark_read(notification_id: Id, db: DB, subject: CurrentSubject) -> Response:
    service.mark_read(db, subject, notification_id)
    return RedirectResponse("/notifications", status_code=303)
