"""Queries of practitioners and their practice sites."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.models.workforce import Practitioner


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
