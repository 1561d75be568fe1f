"""Queries of practitioners and their practice sites."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session, selectinload

from yilianti.models.alliance import Department, Institution
from yilianti.models.workforce import PracticeSite, Practitioner


def practitioners_by_id(db: Session, ids: Iterable[int | None]) -> dict[int, Practitioner]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {p.id: p for p in db.scalars(select(Practitioner).where(Practitioner.id.in_(wanted)))}


def active_practitioners_of(db: Session, institution_ids: Iterable[int]) -> list[Practitioner]:
    """Active practitioners whose home is one of the institutions, by name."""
    return list(db.scalars(select(Practitioner).where(
        Practitioner.home_institution_id.in_(list(institution_ids)),
        Practitioner.active.is_(True)).order_by(Practitioner.name)))


def _loaded() -> list[Any]:
    return [
        selectinload(Practitioner.home_institution),
        selectinload(Practitioner.department),
        selectinload(Practitioner.sites).selectinload(PracticeSite.institution),
        selectinload(Practitioner.sites).selectinload(PracticeSite.department),
    ]


def directory_statement(*where: ColumnElement[bool]) -> Select[Any]:
    """Practitioners matching `where` (home, department and sites loaded), by name: for `kit.page`."""
    return select(Practitioner).where(*where).options(*_loaded()).order_by(Practitioner.name, Practitioner.id)


def practitioner_loaded(db: Session, practitioner_id: int) -> Practitioner | None:
    """The practitioner with home, department and sites freshly loaded."""
    return db.scalar(select(Practitioner).where(Practitioner.id == practitioner_id).options(*_loaded())
                     .execution_options(populate_existing=True))


def sites_of(db: Session, practitioner_id: int, *where: ColumnElement[bool]) -> list[PracticeSite]:
    """The practitioner's practice sites (matching `where`) with institution and department loaded."""
    return list(db.scalars(
        select(PracticeSite).where(PracticeSite.practitioner_id == practitioner_id, *where)
        .options(selectinload(PracticeSite.institution), selectinload(PracticeSite.department))))


def active_practitioners_where(db: Session, *where: ColumnElement[bool]) -> list[Practitioner]:
    """Active practitioners matching `where` (home institution and department loaded), by name."""
    return list(db.scalars(
        select(Practitioner).where(Practitioner.active.is_(True), *where)
        .options(selectinload(Practitioner.home_institution), selectinload(Practitioner.department))
        .order_by(Practitioner.name, Practitioner.id)))


def active_institution_choices(db: Session) -> list[tuple[int, str]]:
    return [(i, n) for i, n in db.execute(
        select(Institution.id, Institution.name).where(Institution.active.is_(True)).order_by(Institution.name))]


def active_specialties(db: Session) -> list[str]:
    """The specialties of active practitioners, once each, in order."""
    return [s for s in db.scalars(
        select(Practitioner.specialty).where(Practitioner.specialty.is_not(None), Practitioner.active.is_(True))
        .distinct().order_by(Practitioner.specialty)) if s]


def active_departments_of(db: Session, institution_id: int) -> list[Department]:
    return list(db.scalars(select(Department).where(Department.institution_id == institution_id,
                                                    Department.active.is_(True)).order_by(Department.name)))
