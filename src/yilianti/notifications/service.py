"""In-app notifications. Other channels (SMS, WeChat) plug in as outbox handlers."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.exceptions import NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.outbox import Notification
from yilianti.notifications import repository
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


def unread_count(db: Session, subject: Subject) -> int:
    return repository.unread_count(db, subject)


def list_for(db: Session, subject: Subject, limit: int = 100) -> list[Notification]:
    return kit.page(db, repository.newest_first(subject), 1, limit, count=False, max_per_page=limit).items


def page_for(db: Session, subject: Subject, page: int = 1, per_page: int = 20, *,
             unread_only: bool = False) -> kit.Page[Notification]:
    """One page of the reader's notifications, newest first, with the total."""
    return kit.page(db, repository.newest_first(subject, unread_only=unread_only), page, per_page, max_per_page=100)


def mark_read(db: Session, subject: Subject, notification_id: int) -> Notification:
    row = repository.one_of_mine(db, subject, notification_id)
    if row is None:
        raise NotFound()
    if row.read_at is None:
        row.read_at = clock.now()
        db.flush()
    return row


def mark_all_read(db: Session, subject: Subject) -> int:
    """Every unread notification of the reader marked read; how many were."""
    return repository.mark_all_read(db, subject, clock.now())
