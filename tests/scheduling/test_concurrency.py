"""No overbooking and no duplicate booking under concurrent bookers — with real commits.

Runs against a database of its own (PostgreSQL in the CI pass, a SQLite file otherwise):
60 bookers from member sites race for 20 slots; 20 threads race to book the same patient.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from tests import builders as b
from tests.scheduling.helpers import world
from yilianti import db as dbmod
from yilianti.migrate import upgrade
from yilianti.models.scheduling import Booking, Slot
from yilianti.scheduling import booking, rules
from yilianti.scheduling.schemas import BookingIn


@pytest.fixture(scope="module")
def committed(test_db):  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url)
    engine = dbmod.make_engine(url, **({"pool_size": 30, "max_overflow": 40} if "postgresql" in url else {}))
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    yield factory
    engine.dispose()


def _race(factory, n, make_call):  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        with factory() as db:
            try:
                make_call(db, i)
                db.commit()
                result = "ok"
            except rules.SlotFull:
                db.rollback()
                result = "full"
            except rules.DuplicateBooking:
                db.rollback()
                result = "duplicate"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return Counter(outcomes)


def test_sixty_bookers_race_for_twenty_slots(committed):  # type: ignore[no-untyped-def]
    with committed() as db:
        w = world(db, capacity=20, tag="甲")
        patients = [b.patient(db, w.comm_doc, name="并发" + "甲乙丙丁戊己庚辛壬癸"[i % 10] + "子丑寅卯辰巳"[i // 10],
                              resident_id=b.resident_id(seq=i % 50, male=i < 50)).id for i in range(60)]
        db.commit()
        session_id, doc = w.session.id, w.comm_doc

    outcomes = _race(committed, 60, lambda db, i: booking.book(
        db, doc, BookingIn(session_id=session_id, patient_id=patients[i])))
    assert outcomes == Counter({"ok": 20, "full": 40})

    with committed() as db:
        active = db.scalars(select(Booking).where(Booking.session_id == session_id,
                                                  Booking.status == "booked")).all()
        assert len(active) == 20
        assert len({bk.slot_id for bk in active}) == 20  # no slot booked twice
        assert len({bk.patient_id for bk in active}) == 20
        booked_slots = db.scalar(select(func.count()).select_from(Slot).where(
            Slot.session_id == session_id, Slot.booked.is_(True)))
        assert booked_slots == 20  # counters agree with rows: no phantom bookings


def test_same_patient_booked_at_once_by_twenty_clerks(committed):  # type: ignore[no-untyped-def]
    with committed() as db:
        w = world(db, capacity=30, tag="乙")
        patient = b.patient(db, w.comm_doc, name="重复预约", resident_id=b.resident_id(seq=49, male=False)).id
        db.commit()
        session_id, docs = w.session.id, [w.comm_doc, w.comm_doc2]

    outcomes = _race(committed, 20, lambda db, i: booking.book(
        db, docs[i % 2], BookingIn(session_id=session_id, patient_id=patient)))
    assert outcomes["ok"] == 1 and outcomes["duplicate"] == 19

    with committed() as db:
        assert db.scalar(select(func.count()).select_from(Booking).where(
            Booking.session_id == session_id, Booking.status == "booked")) == 1
        assert db.scalar(select(func.count()).select_from(Slot).where(
            Slot.session_id == session_id, Slot.booked.is_(True))) == 1  # the loser's slot was not kept
