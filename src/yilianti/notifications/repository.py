"""Queries of in-app notifications: the reader's own (addressed to the user, or to the acting institution)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.models.outbox import Notification


def mine(subject: Subject) -> ColumnElement[bool]:
    return or_(Notification.user_id == subject.user_id,
               (Notification.user_id.is_(None)) & (Notification.institution_id == subject.acting_institution_id))


def unread_count(db: Session, subject: Subject) -> int:
    return db.scalar(select(func.count()).select_from(Notification).where(
        mine(subject), Notification.read_at.is_(None))) or 0


def newest_first(subject: Subject, *, unread_only: bool = False) -> Select[Any]:
    stmt = select(Notification).where(mine(subject))
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return stmt.order_by(Notification.created_at.desc(), Notification.id.desc())


def one_of_mine(db: Session, subject: Subject, notification_id: int) -> Notification | None:
    return db.scalar(select(Notification).where(Notification.id == notification_id, mine(subject)))


def mark_all_read(db: Session, subject: Subject, at: datetime) -> int:
    result = db.execute(update(Notification).where(mine(subject), Notification.read_at.is_(None))
                        .values(read_at=at).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
