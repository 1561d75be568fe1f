"""Notifications as JSON, for a member HIS to show them: the reader's list (with the unread count, paged),
mark one read, mark all read. Errors: CONTRACTS.md bodies (404 for another reader's notification)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.kit.schemas import Id, PageNo
from yilianti.models.outbox import Notification
from yilianti.notifications import preferences, service
from yilianti.notifications.schemas import (
    NotificationOut,
    NotificationPage,
    PreferencesIn,
    PreferencesOut,
    ReadAllOut,
)
from yilianti.web.render import t

router = APIRouter(prefix="/api/v1", tags=["notifications"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not signed in / no valid API token"},
    404: {"description": "unknown notification, or another reader's"},
    422: {"description": "malformed input, with field errors"},
}


def _out(request: Request, n: Notification) -> NotificationOut:
    params = n.params or {}
    title = t(request, n.title, **params) if n.params else n.title
    body = (t(request, n.body, **params) if n.params else n.body) if n.body else None
    return NotificationOut(id=n.id, created_at=n.created_at, kind=n.kind, title=title, body=body, link=n.link,
                           urgent=n.urgent, read_at=n.read_at)


@router.get("/notifications", response_model=NotificationPage, responses=ERRORS)
def notifications(request: Request, db: DB, subject: CurrentSubject, page: PageNo = 1,
                  per_page: int = Query(20, ge=1, le=100), unread_only: bool = False) -> NotificationPage:
    """The reader's notifications, newest first, with the unread count."""
    result = service.page_for(db, subject, page, per_page, unread_only=unread_only)
    return NotificationPage(unread=service.unread_count(db, subject), total=result.total or 0, page=result.page,
                            per_page=result.per_page, pages=result.pages,
                            items=[_out(request, n) for n in result.items])


@router.post("/notifications/read-all", response_model=ReadAllOut, responses=ERRORS)
def read_all(db: DB, subject: CurrentSubject) -> ReadAllOut:
    marked = service.mark_all_read(db, subject)
    return ReadAllOut(marked=marked, unread=service.unread_count(db, subject))


@router.post("/notifications/{notification_id}/read", response_model=NotificationOut, responses=ERRORS)
def read_one(request: Request, notification_id: Id, db: DB, subject: CurrentSubject) -> NotificationOut:
    return _out(request, service.mark_read(db, subject, notification_id))


def _prefs_out(prefs: preferences.Preferences) -> PreferencesOut:
    by_kind: dict[str, list[str]] = {}
    for kind, channel in sorted(prefs.chosen):
        by_kind.setdefault(kind, []).append(channel)
    return PreferencesOut(channels=by_kind, phone=prefs.phone or None, email=prefs.email or None,
                          practitioner_phone=prefs.practitioner_phone or None,
                          available=list(preferences.configured()))


@router.get("/notifications/preferences", response_model=PreferencesOut, responses=ERRORS)
def get_preferences(db: DB, subject: CurrentSubject) -> PreferencesOut:
    """The reader's notification preferences (kinds by SMS / e-mail) and contacts."""
    return _prefs_out(preferences.of(db, subject.user_id))


@router.put("/notifications/preferences", response_model=PreferencesOut, responses=ERRORS)
def put_preferences(body: PreferencesIn, db: DB, subject: CurrentSubject) -> PreferencesOut:
    """Replace the reader's preferences; 422 naming the field for an unknown kind or channel, a bad number
    or address."""
    chosen = [(kind, channel) for kind, chans in body.channels.items() for channel in chans]
    return _prefs_out(preferences.save(db, subject, chosen, body.phone, body.email))
