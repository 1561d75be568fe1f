"""Queries of user accounts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from yilianti.models.auth import LoginSession, User


def display_names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Display names of the given users by id (None ids are skipped; no query when there are none)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u.display_name for u in db.scalars(select(User).where(User.id.in_(wanted)))}


def session_user(db: Session, user_id: int, session_key: str) -> User | None:
    """The user of a login session that has not ended, in one query (the cookie's signature bounds its age)."""
    return db.scalar(
        select(User).join(LoginSession, LoginSession.user_id == User.id)
        .where(User.id == user_id, LoginSession.id == session_key, LoginSession.ended_at.is_(None))
    )


def login_session(db: Session, session_key: str) -> LoginSession | None:
    return db.get(LoginSession, session_key)


def delete_expired_sessions(db: Session, user_id: int, before: datetime) -> None:
    """A user's sessions that expired or ended before `before` (kept a while for the audit trail)."""
    db.execute(delete(LoginSession).where(
        LoginSession.user_id == user_id,
        (LoginSession.expires_at < before) | (LoginSession.ended_at < before)))
