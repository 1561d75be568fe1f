"""Rolling sessions: the hourly job keeps every active schedule's sessions generated ahead."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.scheduling.helpers import world
from yilianti.kit import clock
from yilianti.models.scheduling import Booking, ClinicSession, Slot
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling import repository as sched_repo
from yilianti.scheduling import rolling, schedules, tasks
from yilianti.scheduling.schemas import BookingIn
from yilianti.worker.runner import PERIODIC

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=clock.SHANGHAI)


def _days(db: Session, schedule_id: int) -> list[date]:
    return list(db.scalars(select(ClinicSession.day).where(ClinicSession.schedule_id == schedule_id)
                           .order_by(ClinicSession.day)))


def test_roll_generates_the_coming_weeks_and_keeps_what_exists(db: Session) -> None:
    with clock.frozen(MONDAY):
        w = world(db, capacity=12, days_ahead=3)  # one session on Thursday 5 March, weekly template
        booking = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=b.patient(db, w.comm_doc).id))
        assert rolling.roll_sessions(db, days_ahead=28) == 3  # 12, 19, 26 March (5 March exists)
        assert _days(db, w.schedule.id) == [date(2026, 3, 5), date(2026, 3, 12), date(2026, 3, 19),
                                            date(2026, 3, 26)]
        assert rolling.roll_sessions(db, days_ahead=28) == 0  # idempotent
        # the existing session and its booking are untouched; new sessions have their slots and reserve
        assert db.get(Booking, booking.id).status == "booked"  # type: ignore[union-attr]
        new = db.scalar(select(ClinicSession).where(ClinicSession.schedule_id == w.schedule.id,
                                                    ClinicSession.day == date(2026, 3, 26)))
        assert new is not None and new.capacity == 12 and new.reserved_capacity == 4
        assert db.scalar(select(func.count()).select_from(Slot).where(Slot.session_id == new.id)) == 12
    # five weeks later the window has moved on: only the sessions now in reach are added
    with clock.frozen(MONDAY + timedelta(days=35)):
        assert rolling.roll_sessions(db, days_ahead=28) == 4  # 9, 16, 23, 30 April
        assert _days(db, w.schedule.id)[-1] == date(2026, 4, 30)
        sessions = sched_repo.upcoming_sessions(db, schedule_id=w.schedule.id, days=30)
        assert [s.day for s, _, _ in sessions] == [date(2026, 4, 9), date(2026, 4, 16), date(2026, 4, 23),
                                                   date(2026, 4, 30)]
        assert all(fr == 4 and fp == 8 for _, fr, fp in sessions)


def test_inactive_schedules_and_closures_are_left_alone(db: Session) -> None:
    with clock.frozen(MONDAY):
        w = world(db, capacity=6, days_ahead=3)
        schedules.add_closure(db, w.lead_coord, w.lead.id, date(2026, 3, 19), "院内停电检修")
        assert rolling.roll_sessions(db, days_ahead=21) == 1  # 12 March; 19 March is closed
        assert _days(db, w.schedule.id) == [date(2026, 3, 5), date(2026, 3, 12)]
        w.schedule.active = False
        db.flush()
        assert rolling.roll_sessions(db, days_ahead=60) == 0


def test_the_job_is_registered_hourly(db: Session) -> None:
    job = PERIODIC["scheduling.roll_sessions"]
    assert job.every_seconds == 3600 and job.fn is tasks.roll_sessions
    with clock.frozen(datetime.combine(date(2026, 3, 2), time(9), clock.SHANGHAI)):
        w = world(db, capacity=6, days_ahead=3)
        assert job.fn(db) == 3
        assert len(_days(db, w.schedule.id)) == 4
