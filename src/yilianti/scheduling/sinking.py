"""Sinking figures (下沉): by month, how many bookings the alliance's grassroots sites made upward."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from yilianti.scheduling import repository as repo


@dataclass
class MonthFigures:
    month: str
    offered: int
    reserved: int
    reserved_booked: int
    member_booked: int

    @property
    def sinking_ratio(self) -> float | None:
        return self.reserved / self.offered if self.offered else None

    @property
    def reserve_use(self) -> float | None:
        return self.reserved_booked / self.reserved if self.reserved else None


def sinking_by_month(db: Session, alliance_id: int, start: date, end: date) -> list[MonthFigures]:
    """号源下沉比例 (reserved ÷ offered) and its use (reserved booked by members ÷ reserved), per month."""
    sessions = repo.reserving_sessions(db, alliance_id, start, end)
    booked = repo.taken_per_session(db, alliance_id, start, end, by_members=False)
    member_booked = repo.taken_per_session(db, alliance_id, start, end, by_members=True)
    months: dict[str, MonthFigures] = {}
    for sid, day, capacity, reserved in sessions:
        key = f"{day:%Y-%m}"
        m = months.setdefault(key, MonthFigures(key, 0, 0, 0, 0))
        m.offered += capacity
        m.reserved += reserved
        m.reserved_booked += booked.get(sid, 0)
        m.member_booked += member_booked.get(sid, 0)
    return [months[k] for k in sorted(months)]
