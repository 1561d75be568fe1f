"""Sinking figures (下沉): by month, how many bookings the alliance's grassroots sites made upward."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yilianti.models.scheduling import (
    Booking,
    ClinicSession,
    Pool,
    Schedule,
    SessionStatus,
)


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
    sessions = db.execute(select(ClinicSession.id, ClinicSession.day, ClinicSession.capacity,
                                 ClinicSession.reserved_capacity)
                          .join(Schedule, Schedule.id == ClinicSession.schedule_id)
                          .where(Schedule.reserve_alliance_id == alliance_id, ClinicSession.day >= start,
                                 ClinicSession.day <= end, ClinicSession.status == SessionStatus.open)).all()
    booked = dict(db.execute(select(Booking.session_id, func.count())
                             .join(ClinicSession, ClinicSession.id == Booking.session_id)
                             .join(Schedule, Schedule.id == ClinicSession.schedule_id)
                             .where(Schedule.reserve_alliance_id == alliance_id, Booking.pool == Pool.reserved,
                                    Booking.status.in_(("booked", "arrived", "no_show")),
                                    ClinicSession.day >= start, ClinicSession.day <= end)
                             .group_by(Booking.session_id)).all())
    member_booked = dict(db.execute(select(Booking.session_id, func.count())
                                    .join(ClinicSession, ClinicSession.id == Booking.session_id)
                                    .join(Schedule, Schedule.id == ClinicSession.schedule_id)
                                    .where(Schedule.reserve_alliance_id == alliance_id,
                                           Booking.booked_by_institution_id != Schedule.institution_id,
                                           Booking.status.in_(("booked", "arrived", "no_show")),
                                           ClinicSession.day >= start, ClinicSession.day <= end)
                                    .group_by(Booking.session_id)).all())
    months: dict[str, MonthFigures] = {}
    for sid, day, capacity, reserved in sessions:
        key = f"{day:%Y-%m}"
        m = months.setdefault(key, MonthFigures(key, 0, 0, 0, 0))
        m.offered += capacity
        m.reserved += reserved
        m.reserved_booked += booked.get(sid, 0)
        m.member_booked += member_booked.get(sid, 0)
    return [months[k] for k in sorted(months)]
