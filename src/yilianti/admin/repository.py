"""Queries of account administration: users with their roles, tokens, and what the forms offer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from yilianti.alliance.repository import current_on
from yilianti.models.alliance import Alliance, Institution, Membership
from yilianti.models.auth import ApiToken, RoleAssignment, User
from yilianti.models.workforce import Practitioner


def _with_roles() -> Any:
    return selectinload(User.roles).options(selectinload(RoleAssignment.institution),
                                            selectinload(RoleAssignment.alliance))


def users_with_roles_in(institutions: Iterable[int], alliances: Iterable[int] | None = None) -> ColumnElement[bool]:
    """Users holding a role at one of the institutions (or for one of the alliances)."""
    conds = [RoleAssignment.institution_id.in_(set(institutions) or {-1})]
    if alliances:
        conds.append(RoleAssignment.alliance_id.in_(alliances))
    return User.id.in_(select(RoleAssignment.user_id).where(or_(*conds)))


def users_statement(visible: ColumnElement[bool] | None, q: str | None,
                    institution_id: int | None) -> Select[Any]:
    """Users (those `visible`; matching `q` in username or display name; with a role at the institution),
    roles loaded, by username: for `kit.page`."""
    conds = []
    if visible is not None:
        conds.append(visible)
    if q and q.strip():
        like = f"%{q.strip().lower()}%"
        conds.append(or_(func.lower(User.username).like(like), func.lower(User.display_name).like(like)))
    if institution_id:
        conds.append(User.id.in_(select(RoleAssignment.user_id).where(RoleAssignment.institution_id == institution_id)))
    return select(User).where(*conds).options(_with_roles()).order_by(User.username)


def user_with_roles(db: Session, user_id: int) -> User | None:
    """The user with roles (and their institution and alliance) freshly loaded."""
    return db.scalar(select(User).where(User.id == user_id).options(_with_roles())
                     .execution_options(populate_existing=True))


def is_user(db: Session, user_id: int, where: ColumnElement[bool]) -> bool:
    """Whether the user matches `where`."""
    return db.scalar(select(User.id).where(User.id == user_id, where)) is not None


def tokens_of(db: Session, user_id: int) -> list[ApiToken]:
    """The user's API tokens, newest first."""
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())))


def active_institution_choices(db: Session, among: set[int] | None) -> list[tuple[int, str]]:
    """(id, name) of active institutions (of these, or all), by name."""
    q = select(Institution.id, Institution.name).where(Institution.active.is_(True)).order_by(Institution.name)
    if among is not None:
        q = q.where(Institution.id.in_(among or {-1}))
    return [(i, n) for i, n in db.execute(q).all()]


def alliance_choices(db: Session) -> list[tuple[int, str]]:
    """(id, name) of every alliance, by name."""
    return [(i, n) for i, n in db.execute(select(Alliance.id, Alliance.name).order_by(Alliance.name)).all()]


def practitioner_choices(db: Session, among: set[int] | None, limit: int = 2000) -> list[tuple[int, str, str]]:
    """(id, name, home institution's name) of active practitioners (whose home is one of these), by name."""
    pq = select(Practitioner.id, Practitioner.name, Institution.name).join(
        Institution, Institution.id == Practitioner.home_institution_id).where(Practitioner.active.is_(True))
    if among is not None:
        pq = pq.where(Practitioner.home_institution_id.in_(among or {-1}))
    return [(i, n, inst) for i, n, inst in db.execute(pq.order_by(Practitioner.name).limit(limit))]


def username_linked_to(db: Session, practitioner_id: int, other_than: int | None) -> str | None:
    """The username of an account (other than `other_than`) linked to the practitioner."""
    return db.scalar(select(User.username).where(User.practitioner_id == practitioner_id,
                                                 User.id != (other_than or -1)))


def assignments_of(db: Session, user_id: int | None) -> list[RoleAssignment]:
    """The user's role assignments (institution and alliance loaded), oldest first."""
    return list(db.scalars(select(RoleAssignment).where(RoleAssignment.user_id == user_id)
                           .options(selectinload(RoleAssignment.institution), selectinload(RoleAssignment.alliance))
                           .order_by(RoleAssignment.id)))


def current_members(db: Session, alliance_ids: Iterable[int], on: date) -> set[int]:
    """Institutions with a membership of one of the alliances in force on `on`."""
    return set(db.scalars(select(Membership.institution_id).where(
        Membership.alliance_id.in_(set(alliance_ids)), current_on(on))))
