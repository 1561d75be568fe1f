"""In-app notifications page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.exceptions import InvalidInput
from yilianti.kit.schemas import Id
from yilianti.notifications import preferences, service
from yilianti.web.forms import errors_of
from yilianti.web.render import render_page, t

router = APIRouter(include_in_schema=False)


@router.get("/notifications")
def notifications(request: Request, db: DB, subject: CurrentSubject) -> Response:
    return render_page(request, "notifications.html", {"items": service.list_for(db, subject),
                                                       "unread_count": service.unread_count(db, subject)})


def _settings_page(request: Request, prefs: preferences.Preferences, status: int = 200,
                   **extra: object) -> Response:
    return render_page(request, "notification_settings.html", {
        "prefs": prefs, "kinds": list(preferences.KINDS), "channels": preferences.EXTERNAL,
        "always": preferences.ALWAYS, "configured": preferences.configured(), **extra}, status)


@router.get("/notifications/settings")
def notification_settings(request: Request, db: DB, subject: CurrentSubject) -> Response:
    """Which kinds of notification also come by SMS or e-mail, and to which number and address."""
    return _settings_page(request, preferences.of(db, subject.user_id))


@router.post("/notifications/settings")
async def save_notification_settings(request: Request, db: DB, subject: CurrentSubject) -> Response:
    form = await request.form()
    chosen = [tuple(str(v).split(":", 1)) for v in form.getlist("choice") if ":" in str(v)]
    phone, email = str(form.get("phone") or ""), str(form.get("email") or "")
    try:
        with db.begin_nested():
            prefs = preferences.save(db, subject, [(k, c) for k, c in chosen], phone, email)
    except InvalidInput as exc:
        entered = preferences.Preferences({(k, c) for k, c in chosen} | preferences.ALWAYS, phone, email, "")
        return _settings_page(request, entered, 422, errors=errors_of(request, exc))
    return _settings_page(request, prefs, flash=t(request, "通知设置已保存"))


@router.post("/notifications/read-all")
def mark_all_read(db: DB, subject: CurrentSubject) -> Response:
    """Every unread notification of the reader marked read at once (the API's POST /notifications/read-all)."""
    service.mark_all_read(db, subject)
    return RedirectResponse("/notifications?done=read_all", status_code=303)


@router.post("/notifications/{notification_id}/read")
def mark_read(notification_id: Id, db: DB, subject: CurrentSubject) -> Response:
    service.mark_read(db, subject, notification_id)
    return RedirectResponse("/notifications", status_code=303)
