"""Periodic jobs of the consultation domain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.consultation import service
from yilianti.worker.runner import periodic


@periodic("consultation.sweep_overdue", every_seconds=300)
def sweep_overdue(db: Session) -> int:
    return service.sweep_overdue(db)
