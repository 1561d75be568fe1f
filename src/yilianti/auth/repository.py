"""Queries of user accounts."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.models.auth import User


def display_names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Display names of the given users by id (None ids are skipped; no query when there are none)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u.display_name for u in db.scalars(select(User).where(User.id.in_(wanted)))}
