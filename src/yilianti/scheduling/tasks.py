"""Periodic jobs of the scheduling domain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.scheduling import beds, booking, rolling, waitlist
from yilianti.worker.runner import periodic


@periodic("scheduling.release_reserves", every_seconds=60)
def release_reserves(db: Session) -> int:
    return booking.release_reserves(db)


@periodic("scheduling.expire_bed_reservations", every_seconds=300)
def expire_beds(db: Session) -> int:
    return beds.expire_reservations(db)


@periodic("scheduling.overdue_wait_requests", every_seconds=600)
def overdue_requests(db: Session) -> int:
    return waitlist.overdue_requests(db)


@periodic("scheduling.roll_sessions", every_seconds=3600)
def roll_sessions(db: Session) -> int:
    return rolling.roll_sessions(db)
