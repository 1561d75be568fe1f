"""Every query of the alliance registry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, joinedload

from yilianti.kit import clock
from yilianti.models.alliance import (
    Alliance,
    Department,
    Institution,
    InstitutionKind,
    MemberRole,
    Membership,
)
from yilianti.models.workforce import PracticeSite, Practitioner


def current_on(on: date | ColumnElement[Any], member: Any = Membership) -> ColumnElement[bool]:
    """Membership in force on `on` — the SQL twin of `Membership.is_current(on)`, the one clause every query and
    hot-path statement uses. `on`: a date, or a date expression (a hot path's `$n::date`); `member`: the
    Membership entity or an alias of it (`aliased(Membership)`)."""
    return and_(or_(member.joined_on.is_(None), member.joined_on <= on),
                or_(member.left_on.is_(None), member.left_on > on))


def alliances_in_region(db: Session, authority_id: int | None, on: date) -> set[int]:
    """The alliances a health authority supervises: those whose lead institution (in force on `on`) lies in its
    region — the same province, and the same city and county where the authority names them."""
    authority = db.get(Institution, authority_id) if authority_id is not None else None
    if authority is None or authority.kind != InstitutionKind.health_authority:
        return set()
    stmt = (select(Membership.alliance_id).join(Institution, Institution.id == Membership.institution_id)
            .where(Membership.role == MemberRole.lead, current_on(on), Institution.province == authority.province))
    if authority.city:
        stmt = stmt.where(Institution.city == authority.city)
    if authority.county:
        stmt = stmt.where(Institution.county == authority.county)
    return set(db.scalars(stmt))


def search_alliances(db: Session, on: date, *, model: str | None = None, q: str | None = None,
                     include_inactive: bool = False, only_ids: frozenset[int] | None = None) -> list[Alliance]:
    """Alliances by model and text (name, English name, key, specialty, or a current member's name)."""
    stmt = select(Alliance)
    if not include_inactive:
        stmt = stmt.where(Alliance.active.is_(True))
    if model:
        stmt = stmt.where(Alliance.model == model)
    if only_ids is not None:
        stmt = stmt.where(Alliance.id.in_(only_ids))
    if q:
        member_named = exists().where(
            Membership.alliance_id == Alliance.id, Membership.institution_id == Institution.id, current_on(on),
            or_(Institution.name.contains(q), Institution.short_name.contains(q)))
        stmt = stmt.where(or_(Alliance.name.contains(q), Alliance.name_en.ilike(f"%{q}%"),
                              Alliance.key.contains(q.lower()), Alliance.specialty.contains(q), member_named))
    return list(db.scalars(stmt.order_by(Alliance.name)))


def member_counts(db: Session, alliance_ids: Sequence[int], on: date) -> dict[int, int]:
    if not alliance_ids:
        return {}
    rows = db.execute(
        select(Membership.alliance_id, func.count(func.distinct(Membership.institution_id)))
        .where(Membership.alliance_id.in_(alliance_ids), current_on(on))
        .group_by(Membership.alliance_id))
    return {a: n for a, n in rows}


def leads_of(db: Session, alliance_ids: Sequence[int], on: date) -> dict[int, list[Institution]]:
    out: dict[int, list[Institution]] = {a: [] for a in alliance_ids}
    if not alliance_ids:
        return out
    rows = db.execute(
        select(Membership.alliance_id, Institution).join(Institution, Institution.id == Membership.institution_id)
        .where(Membership.alliance_id.in_(alliance_ids), Membership.role == MemberRole.lead, current_on(on))
        .order_by(Institution.level.desc(), Institution.name))
    for alliance_id, inst in rows:
        out[alliance_id].append(inst)
    return out


def memberships_of_alliance(db: Session, alliance_id: int) -> list[Membership]:
    return list(db.scalars(
        select(Membership).options(joinedload(Membership.institution))
        .where(Membership.alliance_id == alliance_id)
        .order_by(Membership.joined_on, Membership.id)))


def current_memberships(db: Session, alliance_id: int, on: date) -> list[Membership]:
    return list(db.scalars(
        select(Membership).options(joinedload(Membership.institution))
        .where(Membership.alliance_id == alliance_id, current_on(on))
        .order_by(Membership.id)))


def memberships_of_institution(db: Session, institution_id: int) -> list[Membership]:
    return list(db.scalars(
        select(Membership).options(joinedload(Membership.alliance))
        .where(Membership.institution_id == institution_id)
        .order_by(Membership.joined_on, Membership.id)))


def memberships_of_pair(db: Session, alliance_id: int, institution_id: int) -> list[Membership]:
    return list(db.scalars(select(Membership).where(
        Membership.alliance_id == alliance_id, Membership.institution_id == institution_id)))


def alliance_named(db: Session, *, key: str | None = None, name: str | None = None) -> Alliance | None:
    if key is not None:
        return db.scalar(select(Alliance).where(Alliance.key == key))
    return db.scalar(select(Alliance).where(Alliance.name == name))


def institution_where(db: Session, **equals: object) -> Institution | None:
    stmt = select(Institution)
    for column, value in equals.items():
        stmt = stmt.where(getattr(Institution, column) == value)
    return db.scalar(stmt.limit(1))


def search_institutions(db: Session, *, q: str | None = None, kind: str | None = None,
                        level: int | None = None, province: str | None = None,
                        include_inactive: bool = True, only_ids: frozenset[int] | None = None,
                        limit: int = 500, offset: int = 0) -> list[Institution]:
    stmt = select(Institution)
    if q:
        stmt = stmt.where(or_(Institution.name.contains(q), Institution.short_name.contains(q),
                              Institution.code == q, Institution.city.contains(q), Institution.county.contains(q)))
    if kind:
        stmt = stmt.where(Institution.kind == kind)
    if level is not None:
        stmt = stmt.where(Institution.level == level)
    if province:
        stmt = stmt.where(Institution.province == province)
    if not include_inactive:
        stmt = stmt.where(Institution.active.is_(True))
    if only_ids is not None:
        stmt = stmt.where(Institution.id.in_(only_ids))
    return list(db.scalars(stmt.order_by(Institution.province, Institution.name).limit(limit).offset(offset)))


def departments_of(db: Session, institution_id: int, include_inactive: bool = True) -> list[Department]:
    stmt = select(Department).where(Department.institution_id == institution_id)
    if not include_inactive:
        stmt = stmt.where(Department.active.is_(True))
    return list(db.scalars(stmt.order_by(Department.active.desc(), Department.name)))


def department_named(db: Session, institution_id: int, name: str) -> Department | None:
    return db.scalar(select(Department).where(Department.institution_id == institution_id,
                                              Department.name == name))


def home_practitioners(db: Session, institution_id: int) -> list[Practitioner]:
    return list(db.scalars(
        select(Practitioner).options(joinedload(Practitioner.department))
        .where(Practitioner.home_institution_id == institution_id, Practitioner.active.is_(True))
        .order_by(Practitioner.name)))


def visiting_sessions(db: Session, institution_id: int, on: date) -> list[PracticeSite]:
    """Sessions of practitioners from elsewhere at this institution, in force on `on` or later."""
    return list(db.scalars(
        select(PracticeSite)
        .options(joinedload(PracticeSite.practitioner).joinedload(Practitioner.home_institution),
                 joinedload(PracticeSite.department))
        .join(Practitioner, Practitioner.id == PracticeSite.practitioner_id)
        .where(PracticeSite.institution_id == institution_id, Practitioner.active.is_(True),
               or_(PracticeSite.ends_on.is_(None), PracticeSite.ends_on >= on))
        .order_by(PracticeSite.weekday, PracticeSite.period, Practitioner.name)))


def active_institution_choices(db: Session) -> list[tuple[int, str]]:
    """(id, name) of every active institution, by name — for pickers."""
    q = select(Institution.id, Institution.name).where(Institution.active.is_(True)).order_by(Institution.name)
    return [(i, n) for i, n in db.execute(q).all()]


def active_departments_by_institution(db: Session, limit: int = 5000) -> dict[str, list[tuple[int, str]]]:
    """Active departments as (id, name), grouped by their institution's name — for pickers."""
    dq = select(Department.id, Department.name, Institution.name).join(
        Institution, Institution.id == Department.institution_id).where(Department.active.is_(True))
    departments: dict[str, list[tuple[int, str]]] = {}
    for d_id, d_name, i_name in db.execute(dq.order_by(Institution.name, Department.name).limit(limit)):
        departments.setdefault(i_name, []).append((d_id, d_name))
    return departments


def alliance_choices_of(db: Session, institution_id: int | None) -> list[tuple[int, str]]:
    """(id, name) of the alliances the institution is a member of today, by name."""
    rows = db.execute(select(Alliance.id, Alliance.name).join(Membership, Membership.alliance_id == Alliance.id)
                      .where(Membership.institution_id == institution_id, current_on(clock.today_local()))
                      .order_by(Alliance.name)).all()
    return [(r[0], r[1]) for r in rows]


def alliances_with_role_of(db: Session, institution_id: int) -> list[tuple[Alliance, str]]:
    """(alliance, the institution's role in it) for the alliances it is a member of today, by name."""
    return [(a, r) for a, r in db.execute(
        select(Alliance, Membership.role).join(Membership, Membership.alliance_id == Alliance.id)
        .where(Membership.institution_id == institution_id, current_on(clock.today_local()))
        .order_by(Alliance.name))]


def count_alliances(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Alliance)) or 0


def count_institutions(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Institution)) or 0


def institution_names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Names of the given institutions by id (None ids are skipped; no query when there are none)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {i: n for i, n in db.execute(select(Institution.id, Institution.name).where(Institution.id.in_(wanted)))}


def department_names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Names of the given departments by id (None ids skipped)."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return {i: n for i, n in db.execute(select(Department.id, Department.name).where(Department.id.in_(wanted)))}


def all_institution_names(db: Session) -> dict[int, str]:
    """Every institution's name by id."""
    return {i: n for i, n in db.execute(select(Institution.id, Institution.name))}


def all_institutions(db: Session) -> list[Institution]:
    """Every institution, by name."""
    return list(db.scalars(select(Institution).order_by(Institution.name)))


def all_alliances(db: Session) -> list[Alliance]:
    """Every alliance, active or not, by name."""
    return list(db.scalars(select(Alliance).order_by(Alliance.name)))


def institutions_by_place(db: Session, limit: int = 2000) -> list[Institution]:
    """Institutions by province, city and name (pickers that group by place)."""
    return list(db.scalars(select(Institution).order_by(Institution.province, Institution.city, Institution.name)
                           .limit(limit)))


def institutions_among(db: Session, ids: Iterable[int] | Select[Any] | None, limit: int = 300) -> list[Institution]:
    """The institutions with these ids (or those a select of ids names; None = all), by name."""
    q = select(Institution).order_by(Institution.name)
    if ids is not None:
        q = q.where(Institution.id.in_(ids))
    return list(db.scalars(q.limit(limit)))


def has_membership(db: Session, alliance_id: int | None, institution_id: int | None) -> bool:
    """Whether the institution has (or had) a membership of the alliance, in any period."""
    return db.scalar(select(Membership.id).where(Membership.alliance_id == alliance_id,
                                                 Membership.institution_id == institution_id).limit(1)) is not None


def membership_in_force(db: Session, alliance_id: int, institution_id: int, on: date) -> Membership | None:
    """The institution's membership of the alliance in force on `on`."""
    return db.scalar(select(Membership).where(
        Membership.alliance_id == alliance_id, Membership.institution_id == institution_id,
        current_on(on)).limit(1))


def institution_by_name_or_id(db: Session, key: str) -> Institution | None:
    """The institution with this name, or with this id when `key` is a number."""
    return db.scalar(select(Institution).where(or_(
        Institution.name == key, Institution.id == (int(key) if key.isdigit() else -1))))
