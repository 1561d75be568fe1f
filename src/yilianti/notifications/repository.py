"""Queries of in-app notifications: the reader's own (addressed to the user, or to the acting institution)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.models.auth import RoleAssignment, User
from yilianti.models.outbox import Notification, NotificationContact, NotificationPreference
from yilianti.models.workforce import Practitioner


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


# ------------------------------------------------------------------ external channels: preferences and contacts
def preferences(db: Session, user_id: int) -> set[tuple[str, str]]:
    """The user's (kind, channel) choices."""
    return {(k, c) for k, c in db.execute(select(NotificationPreference.kind, NotificationPreference.channel)
                                          .where(NotificationPreference.user_id == user_id))}


def replace_preferences(db: Session, user_id: int, chosen: set[tuple[str, str]]) -> None:
    db.execute(delete(NotificationPreference).where(NotificationPreference.user_id == user_id))
    db.add_all([NotificationPreference(user_id=user_id, kind=k, channel=c) for k, c in sorted(chosen)])
    db.flush()


def contact(db: Session, user_id: int) -> NotificationContact | None:
    return db.get(NotificationContact, user_id)


@dataclass(frozen=True)
class Addresses:
    """Where a user's external notifications go, and in what language: one row of the user, the contact they
    entered and their practitioner."""

    active: bool
    locale: str | None  # None: Chinese
    phone: str | None  # as entered
    email: str | None
    practitioner_phone: str | None  # used when no phone is entered


def addresses(db: Session, user_id: int) -> Addresses | None:
    """The user's addresses in one query (None: no such user)."""
    row = db.execute(select(User.active, User.locale, NotificationContact.phone, NotificationContact.email,
                            Practitioner.phone)
                     .outerjoin(NotificationContact, NotificationContact.user_id == User.id)
                     .outerjoin(Practitioner, Practitioner.id == User.practitioner_id)
                     .where(User.id == user_id)).first()
    return Addresses(bool(row[0]), row[1], row[2], row[3], row[4]) if row else None


def wanting(db: Session, kind: str, *, user_id: int | None, institution_id: int | None) -> list[tuple[int, str]]:
    """(user, channel) of the addressees who chose this kind by an external channel: the addressed user, or,
    for a notice to an institution, every active user holding a role there."""
    stmt = select(NotificationPreference.user_id, NotificationPreference.channel).join(
        User, User.id == NotificationPreference.user_id).where(NotificationPreference.kind == kind,
                                                              User.active.is_(True))
    if user_id is not None:
        stmt = stmt.where(NotificationPreference.user_id == user_id)
    elif institution_id is not None:
        stmt = stmt.where(NotificationPreference.user_id.in_(
            select(RoleAssignment.user_id).where(RoleAssignment.institution_id == institution_id)))
    else:
        return []
    return [(int(u), str(c)) for u, c in db.execute(stmt.order_by(NotificationPreference.user_id,
                                                                  NotificationPreference.channel))]
