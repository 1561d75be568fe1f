"""Periodic jobs of the referral domain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.referral import service
from yilianti.worker.runner import periodic


@periodic("referral.sweep_overdue", every_seconds=300)
def sweep_overdue(db: Session) -> int:
    return service.sweep_overdue(db)
