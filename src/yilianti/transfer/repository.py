"""Queries of critical transfers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.models.transfer import CriticalTransfer


def transfers_of_referral(db: Session, referral_id: int) -> list[CriticalTransfer]:
    """Critical transfers started from one referral, oldest first."""
    return list(db.scalars(select(CriticalTransfer).where(CriticalTransfer.referral_id == referral_id)
                           .order_by(CriticalTransfer.id)))
