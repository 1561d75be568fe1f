"""Group commit of the PostgreSQL booking path: bookings that arrive together go in one statement.

Each booking in a batch must get exactly the answer it would get alone — booked, the reference's
error, or handed to booking.book — and a batch that fails as a whole must leave nothing written and
still answer every booking. Real commits in a database of its own; the batches are driven directly
(one lane, so every booking gathered at once waits for the same statement).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.live import live_server
from tests.scheduling.helpers import world
from yilianti.audit import batch as audit_batch
from yilianti.config import get_settings
from yilianti.fastdb import group as fastgroup
from yilianti.fastdb import pool as fastpool
from yilianti.models import AuditEvent, Booking, Slot
from yilianti.scheduling import booking, fastpath, rules, schedules
from yilianti.scheduling.schemas import BookingIn
from yilianti.web.faults import fault_of

pytestmark = pytest.mark.skipif(os.environ.get("YILIANTI_TEST_BACKEND") != "postgresql",
                                reason="the async booking path runs on PostgreSQL only")


@pytest.fixture()
def live(test_db):  # type: ignore[no-untyped-def]
    with live_server(test_db, booking_fast_path=True) as served:
        yield served


def _asyncpg_url() -> str:
    from sqlalchemy.engine import make_url

    from yilianti.config import normalise_db_url

    url = make_url(normalise_db_url(get_settings().database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _drive(asks: list[tuple[Any, int, int]], monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[int]]:
    """Book (subject, session, patient) all at once through one lane; the answers and the batch sizes run."""
    sizes: list[int] = []
    execute = fastpath._Booker._execute

    async def counted(conn: Any, batch: list[Any]) -> list[Any]:
        sizes.append(len(batch))
        return await execute(conn, batch)

    monkeypatch.setattr(fastpath._Booker, "_execute", staticmethod(counted))

    async def main() -> list[Any]:
        fastgroup._groups[fastpath._Booker] = (asyncio.get_running_loop(), fastpath._Booker(lanes=1))
        try:
            return await asyncio.gather(*(
                fastpath._statement(subject, BookingIn(session_id=session, patient_id=patient), "10.0.0.9")
                for subject, session, patient in asks), return_exceptions=True)
        finally:
            await audit_batch.stop()
            await fastpool.dispose()
            fastgroup._groups.pop(fastpath._Booker, None)

    return asyncio.run(main()), sizes


def test_each_booking_of_a_batch_gets_its_own_answer(live, monkeypatch):  # type: ignore[no-untyped-def]
    _, factory = live
    with factory() as db:
        w1, w2, w3, w4 = (world(db, capacity=c, tag=t) for c, t in ((3, "批一"), (1, "批二"), (2, "批三"), (2, "批四")))
        p = [b.patient(db, w.comm_doc, name="批量" + "甲乙丙丁戊己"[i], resident_id=b.resident_id(seq=70 + i)).id
             for i, w in enumerate((w1, w2, w1, w2, w3, w4))]
        stranger = b.patient(db, w3.out_doc, name="联盟外患者", resident_id=b.resident_id(seq=80)).id
        booking.book(db, w3.comm_doc, BookingIn(session_id=w3.session.id, patient_id=p[4]))  # booked before
        schedules.cancel_session(db, w4.lead_coord, w4.session.id, "专家临时出诊任务")
        db.commit()
        s1, s2, s3, s4 = (w.session.id for w in (w1, w2, w3, w4))
        asks = [
            (w1.comm_doc, s1, p[0]),       # booked: the reserved pool, seat 1
            (w2.comm_doc, s2, p[1]),       # booked: the only seat
            (w3.out_doc, s3, stranger),    # no common alliance: booking.book explains (None)
            (w4.comm_doc, s4, p[5]),       # session cancelled
            (w1.comm_doc, 999999, p[0]),   # no such session: booking.book explains (None)
            (w1.comm_doc2, s1, p[2]),      # same session as the first: next batch, booked
            (w2.comm_doc2, s2, p[3]),      # same session as the second: next batch, full
            (w3.comm_doc, s3, p[4]),       # already booked there
        ]
        users = {i: (a[0].user_id, a[0].acting_institution_id) for i, a in enumerate(asks)}
    answers, sizes = _drive(asks, monkeypatch)
    assert sizes == [5, 3]  # one statement for the five sessions, one for the three that had to wait
    booked = {i: a for i, a in enumerate(answers) if isinstance(a, dict)}
    assert sorted(booked) == [0, 1, 5]
    assert (booked[0]["seq"], booked[0]["pool"], booked[5]["seq"]) == (1, "reserved", 2)
    assert booked[1]["seq"] == 1 and booked[1]["session_id"] == s2
    assert answers[2] is None and answers[4] is None
    assert isinstance(answers[3], rules.SessionClosed)
    assert isinstance(answers[6], rules.SlotFull)
    assert isinstance(answers[7], rules.DuplicateBooking)
    with factory() as db:
        for i, out in booked.items():
            row = db.get(Booking, out["id"])
            assert row is not None and (row.session_id, row.patient_id, row.number) == (asks[i][1], asks[i][2],
                                                                                         out["number"])
            assert (row.booked_by_user_id, row.booked_by_institution_id) == users[i]
            assert db.scalar(select(Slot.booked).where(Slot.id == row.slot_id)) is True
            events = db.scalars(select(AuditEvent).where(AuditEvent.patient_id == asks[i][2],
                                                         AuditEvent.at >= row.created_at)).all()
            kinds = {(e.action, e.resource_type, e.resource_id, e.user_id, e.acting_institution_id, e.ip)
                     for e in events}
            assert ("create", "booking", str(row.id), *users[i], "10.0.0.9") in kinds
            assert ("read", "booking_patient", str(asks[i][2]), *users[i], "10.0.0.9") in kinds
        # nothing for the refused ones; one booking per seat
        assert db.scalar(select(func.count()).select_from(Booking).where(
            Booking.session_id.in_([s1, s2, s3, s4]))) == 4  # these three and the earlier one
        assert db.scalar(select(func.count()).select_from(Slot).where(
            Slot.session_id == s2, Slot.booked.is_(True))) == 1


def test_a_batch_that_fails_as_a_whole_answers_each_booking(live, monkeypatch):  # type: ignore[no-untyped-def]
    _, factory = live
    with factory() as db:
        ws = [world(db, capacity=2, tag=t) for t in ("败一", "败二", "败三")]
        p = [b.patient(db, w.comm_doc, name="整批" + "甲乙丙"[i], resident_id=b.resident_id(seq=85 + i)).id
             for i, w in enumerate(ws)]
        db.commit()
        asks = [(w.comm_doc, w.session.id, p[i]) for i, w in enumerate(ws)]
    # the first statement meets a concurrent duplicate (the unique index): every booking is run again alone
    execute = fastpath._Booker._execute
    calls: list[int] = []

    async def failing_once(conn: Any, batch: list[Any]) -> list[Any]:
        calls.append(len(batch))
        if len(calls) == 1:
            raise asyncpg.UniqueViolationError.new({"C": "23505", "n": "uq_booking_active_patient_session",
                                                    "M": "duplicate key value"})
        if len(batch) == 1 and batch[0].patient_id == p[1]:  # and alone, one of them fails on its own
            raise asyncpg.DeadlockDetectedError.new({"C": "40P01", "M": "deadlock detected"})
        return await execute(conn, batch)

    monkeypatch.setattr(fastpath._Booker, "_execute", staticmethod(failing_once))
    answers, _ = _drive(asks, monkeypatch)
    assert calls == [3, 1, 1, 1]
    # its own error for the one that failed (the route then hands it to booking.book); the others booked
    assert isinstance(answers[1], asyncpg.DeadlockDetectedError)
    assert [answers[0]["patient_id"], answers[2]["patient_id"]] == [p[0], p[2]]
    assert answers[0]["seq"] == answers[2]["seq"] == 1
    with factory() as db:
        assert sorted(db.scalars(select(Booking.patient_id).where(Booking.patient_id.in_(p)))) == [p[0], p[2]]


def test_numbers_drawn_twice_in_one_batch_are_drawn_again(live, monkeypatch):  # type: ignore[no-untyped-def]
    _, factory = live
    with factory() as db:
        ws = [world(db, capacity=2, tag=t) for t in ("号一", "号二")]  # the same day: both first seats are 001
        p = [b.patient(db, w.comm_doc, name="同号" + "甲乙"[i], resident_id=b.resident_id(seq=90 + i)).id
             for i, w in enumerate(ws)]
        db.commit()
        asks = [(w.comm_doc, w.session.id, p[i]) for i, w in enumerate(ws)]
    fastpath._planned.clear()  # the plan's own statement on the new connection draws first
    draws = iter(["AAAA"] * 3)
    real = fastpath.secrets.token_hex
    monkeypatch.setattr(fastpath.secrets, "token_hex", lambda n: next(draws, None) or real(n))
    answers, sizes = _drive(asks, monkeypatch)
    assert sizes == [2]  # one batch, its statement run again with new numbers
    numbers = [a["number"] for a in answers]
    assert len(set(numbers)) == 2 and not any(n.endswith("-AAAA") for n in numbers)
    with factory() as db:
        assert sorted(db.scalars(select(Booking.number).where(Booking.patient_id.in_(p)))) == sorted(numbers)


def test_a_booking_that_waited_too_long_is_busy_and_not_booked(live, monkeypatch):  # type: ignore[no-untyped-def]
    _, factory = live
    with factory() as db:
        w = world(db, capacity=2, tag="久等")
        p = [b.patient(db, w.comm_doc, name="久等" + "甲乙"[i], resident_id=b.resident_id(seq=93 + i)).id
             for i in range(2)]
        db.commit()
        doc, session_id = w.comm_doc, w.session.id

    async def main() -> list[Any]:
        booker = fastpath._Booker(lanes=1)

        def ask(patient: int) -> fastpath._Ask:
            return fastpath._Ask(session_id, patient, doc.acting_institution_id, doc.user_id, doc.username, None,
                                 None, None, None, "api")

        # the first waited longer than a request waits for a pooled connection (db_pool_timeout)
        long_ago = time.monotonic() - get_settings().db_pool_timeout - 1
        try:
            return await asyncio.gather(booker.submit(ask(p[0]), since=long_ago), booker.submit(ask(p[1])),
                                        return_exceptions=True)
        finally:
            await fastpool.dispose()

    stale, fresh = asyncio.run(main())
    assert isinstance(stale, fastpool.Busy) and stale.status == 503
    assert fresh["id"] is not None and fresh["seq"] == 1
    with factory() as db:
        assert db.scalars(select(Booking.patient_id).where(Booking.session_id == session_id)).all() == [p[1]]


def test_a_connection_cut_mid_batch_answers_every_booking_unavailable_and_is_not_reused(  # type: ignore[no-untyped-def]
        live, monkeypatch):
    """PostgreSQL ends the connection under a batch (pg_terminate_backend, as at a connection limit or a restart):
    every booking of the batch gets the database's failure (503 on the route, after the ORM path meets it too),
    none is retried alone on the cut connection — asyncpg then raised its own "another operation is in progress",
    which no rule knew as a database fault: the one 500 the fault burst met (tests/web/test_fault_burst.py) —
    and the next booking gets a new connection. Nothing of the batch is written."""
    _, factory = live
    with factory() as db:
        ws = [world(db, capacity=2, tag=t) for t in ("断一", "断二", "断三", "断四")]
        p = [b.patient(db, w.comm_doc, name="断连" + "甲乙丙丁"[i], resident_id=b.resident_id(seq=60 + i)).id
             for i, w in enumerate(ws)]
        db.commit()
        asks = [(w.comm_doc, w.session.id, p[i]) for i, w in enumerate(ws)]
    execute = fastpath._Booker._execute
    sizes: list[int] = []

    async def cut_under_the_first(conn: Any, batch: list[Any]) -> list[Any]:
        sizes.append(len(batch))
        if len(sizes) == 1:
            await conn.fetch("SELECT pg_sleep(5) AS cut_here")  # ended by the killer below
        return await execute(conn, batch)

    monkeypatch.setattr(fastpath._Booker, "_execute", staticmethod(cut_under_the_first))

    async def main() -> tuple[list[Any], Any]:
        killer = await asyncpg.connect(_asyncpg_url())
        fastgroup._groups[fastpath._Booker] = (asyncio.get_running_loop(), fastpath._Booker(lanes=1))

        async def kill() -> None:
            while not await killer.fetch("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE query LIKE 'SELECT pg_sleep(5) AS cut_here%' AND state = 'active'"):
                await asyncio.sleep(0.05)

        try:
            killing = asyncio.ensure_future(kill())
            cut = await asyncio.gather(*(
                fastpath._statement(subject, BookingIn(session_id=session, patient_id=patient), "10.0.0.9")
                for subject, session, patient in asks[:3]), return_exceptions=True)
            await killing
            subject, session, patient = asks[3]
            after = await fastpath._statement(subject, BookingIn(session_id=session, patient_id=patient), "10.0.0.9")
            return cut, after
        finally:
            await killer.close()
            await audit_batch.stop()
            await fastpool.dispose()
            fastgroup._groups.pop(fastpath._Booker, None)

    cut, after = asyncio.run(main())
    assert sizes == [3, 1]  # the cut batch was not run again item by item; the next booking went alone
    assert all(a is cut[0] for a in cut), cut  # one failure, the batch's: AdminShutdown or the connection gone
    assert isinstance(cut[0], asyncpg.PostgresError) and fault_of(cut[0]).status == 503  # type: ignore[union-attr]
    assert after["patient_id"] == p[3] and after["seq"] == 1  # on a new connection
    with factory() as db:
        assert db.scalars(select(Booking.patient_id).where(Booking.patient_id.in_(p))).all() == [p[3]]
