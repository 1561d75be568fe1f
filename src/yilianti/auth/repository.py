"""Queries of user accounts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.orm import Session

from yilianti.models.alliance import Institution
from yilianti.models.auth import ApiToken, ClientAssertion, LoginSession, RoleAssignment, SystemClient, User
from yilianti.models.workforce import Practitioner


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


def user_named(db: Session, username: str) -> User | None:
    return db.scalar(select(User).where(User.username == username))


def user_id_named(db: Session, username: str) -> int | None:
    return db.scalar(select(User.id).where(User.username == username))


def roles_with_institution_name(db: Session, user_id: int) -> list[tuple[RoleAssignment, str | None]]:
    """The user's role assignments, each with its institution's name (None for a role without one)."""
    return [(ra, n) for ra, n in db.execute(
        select(RoleAssignment, Institution.name)
        .outerjoin(Institution, Institution.id == RoleAssignment.institution_id)
        .where(RoleAssignment.user_id == user_id))]


def home_institution_of(db: Session, practitioner_id: int) -> int | None:
    return db.scalar(select(Practitioner.home_institution_id).where(Practitioner.id == practitioner_id))


def has_role_at(db: Session, user_id: int, institution_id: int) -> bool:
    """Whether the user holds any role at the institution."""
    return db.scalar(select(RoleAssignment.id).where(
        RoleAssignment.user_id == user_id, RoleAssignment.institution_id == institution_id).limit(1)) is not None


def token_with_hash(db: Session, hashed: str) -> ApiToken | None:
    return db.scalar(select(ApiToken).where(ApiToken.token_hash == hashed))


def touch_token(conn: Connection, token_id: int, now: datetime) -> None:
    """On a connection of its own: record the token's last use unless another worker is recording it (the row is
    skipped when locked), and commit."""
    locked = conn.execute(select(ApiToken.id).where(ApiToken.id == token_id).with_for_update(skip_locked=True)).first()
    if locked is not None:
        conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
    conn.commit()


# ---------------------------------------------------------------- system clients (auth/clients.py)


def client_named(db: Session, client_id: str) -> SystemClient | None:
    return db.scalar(select(SystemClient).where(SystemClient.client_id == client_id))


def clients_with_names(db: Session, institutions: set[int] | None) -> list[tuple[SystemClient, str]]:
    """The registered clients with their institution's name, of these institutions (None: all), newest first."""
    q = select(SystemClient, Institution.name).join(Institution, Institution.id == SystemClient.institution_id)
    if institutions is not None:
        q = q.where(SystemClient.institution_id.in_(institutions))
    return [(c, n) for c, n in db.execute(q.order_by(SystemClient.id.desc()))]


def live_tokens_of(db: Session, user_id: int) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))))


def delete_scoped_tokens_before(db: Session, before: datetime) -> int:
    """System clients' access tokens that expired before `before` (kept a while for the audit trail)."""
    result = db.execute(delete(ApiToken).where(ApiToken.scope.is_not(None), ApiToken.expires_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def delete_assertions_before(db: Session, before: datetime) -> None:
    db.execute(delete(ClientAssertion).where(ClientAssertion.expires_at < before))


def assertion_used(db: Session, key: str) -> bool:
    return db.get(ClientAssertion, key) is not None
