"""Queries of the patient register (access rules come from authz.policy, never restated here)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.models.patient import Patient


def count_readable(db: Session, subject: Subject) -> int:
    """How many patients the subject may see."""
    return db.scalar(select(func.count()).select_from(Patient).where(policy.readable(subject))) or 0


def patients_by_id(db: Session, ids: Iterable[int | None]) -> dict[int, Patient]:
    """The given patients by id, without an access check (the caller shows only rows it may)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {p.id: p for p in db.scalars(select(Patient).where(Patient.id.in_(wanted)))}
