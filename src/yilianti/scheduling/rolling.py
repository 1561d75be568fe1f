"""Rolling sessions: keep every active schedule's sessions generated some weeks ahead.

Templates only turn into dated sessions (and slots) when `generate_sessions` runs; this
job runs it hourly for the window [today, today + days_ahead], so a database started
weeks after its schedules were set up (the demo, or a site that forgot to generate) still
has bookable sessions. Sessions that already exist are kept as they are (with their
bookings); closures are honoured.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from yilianti.kit import clock
from yilianti.scheduling import repository as repo
from yilianti.scheduling import schedules

__all__ = ["roll_sessions"]


def roll_sessions(db: Session, days_ahead: int = 28) -> int:
    """Generate the missing sessions of the coming `days_ahead` days; returns how many were created."""
    today = clock.today_local()
    end = today + timedelta(days=days_ahead)
    ids = repo.schedules_with_templates(db)
    return sum(schedules.generate_sessions(db, None, schedule_id, today, end) for schedule_id in ids)
