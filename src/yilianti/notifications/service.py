"""In-app notifications. Other channels (SMS, WeChat) plug in as outbox handlers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.exceptions import NotFound
from yilianti.kit import clock
from yilianti.models.outbox import Notification
from yilianti.worker.outbox import enqueue


def notify(db: Session, *, title: str, body: str | None = None, link: str | None = None,
           user_id: int | None = None, institution_id: int | None = None, kind: str = "info",
           urgent: bool = False, dedupe_key: str | None = None, params: dict[str, Any] | None = None) -> None:
    """Queue a notification; it is delivered only if the current transaction commits.

    With `params`, `title` and `body` are i18n codes (locale/zh and locale/en catalogues) rendered
    with these params in each reader's language; without, they are shown as written."""
    enqueue_notice(db, payload(title=title, body=body, link=link, user_id=user_id, institution_id=institution_id,
                               kind=kind, urgent=urgent, params=params), dedupe_key=dedupe_key)


def payload(*, title: Any, body: Any = None, link: Any = None, user_id: Any = None, institution_id: Any = None,
            kind: Any = "info", urgent: Any = False, params: Any = None) -> dict[str, Any]:
    """The outbox payload of one notification. The fast paths build theirs with it too (with column
    expressions for values their statement reads, compiled by kit.workflow.sql_json)."""
    return {"title": title, "body": body, "link": link, "user_id": user_id, "institution_id": institution_id,
            "kind": kind, "urgent": urgent, "params": params}


def enqueue_notice(db: Session, notice: dict[str, Any], *, dedupe_key: str | None = None) -> None:
    """Queue a notification built by `payload`."""
    enqueue(db, "notify", notice, dedupe_key=dedupe_key)


def _mine(subject: Subject):  # type: ignore[no-untyped-def]
    return or_(Notification.user_id == subject.user_id,
               (Notification.user_id.is_(None)) & (Notification.institution_id == subject.acting_institution_id))


def unread_count(db: Session, subject: Subject) -> int:
    return db.scalar(select(func.count()).select_from(Notification).where(
        _mine(subject), Notification.read_at.is_(None))) or 0


def list_for(db: Session, subject: Subject, limit: int = 100) -> list[Notification]:
    return list(db.scalars(select(Notification).where(_mine(subject))
                           .order_by(Notification.created_at.desc()).limit(limit)))


def mark_read(db: Session, subject: Subject, notification_id: int) -> None:
    row = db.scalar(select(Notification).where(Notification.id == notification_id, _mine(subject)))
    if row is None:
        raise NotFound()
    if row.read_at is None:
        row.read_at = clock.now()
