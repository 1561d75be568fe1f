"""The one-statement referral move on PostgreSQL writes what service.transition writes.

Real commits in a database of its own, a real uvicorn server, API tokens as member systems use
them. Each move is made once by the fast path and once by the reference (the setting off, same
server, same token), and the rows and responses are compared; 30 clients racing one move give
exactly one winner.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.live import api_token, live_server
from tests.referral.helpers import drive, setup, submitted_up
from yilianti.config import get_settings
from yilianti.kit import clock
from yilianti.models import AuditEvent
from yilianti.models.outbox import OutboxMessage
from yilianti.models.referral import Referral, ReferralHistory

pytestmark = pytest.mark.skipif(os.environ.get("YILIANTI_TEST_BACKEND") != "postgresql",
                                reason="the async referral move runs on PostgreSQL only")


def _token(db, subject) -> str:  # type: ignore[no-untyped-def]
    return api_token(db, subject)


@pytest.fixture(scope="module")
def server(test_db):  # type: ignore[no-untyped-def]
    with live_server(test_db, referral_fast_path=True, auth_cache_seconds=5.0) as served:
        yield served


def _post(base: str, referral_id: int, token: str, to: str, expected: str, *, fast: bool,
          served: bool | None = None, lang: str = "zh") -> httpx.Response:
    from yilianti.referral import fastpath

    settings = get_settings()
    settings.referral_fast_path = fast
    before = fastpath.stats["statement"] + fastpath.stats["refused"]
    try:
        r = httpx.post(f"{base}/api/v1/referrals/{referral_id}/transition",
                       json={"to_status": to, "expected_status": expected},
                       headers={"Authorization": f"Bearer {token}", "Accept-Language": lang})
    finally:
        settings.referral_fast_path = True
    # answered by the statement exactly when the fast path is on
    assert (fastpath.stats["statement"] + fastpath.stats["refused"] == before + 1) == (fast if served is None
                                                                                       else served)
    return r


def _rows(db, referral_id: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    ref = db.get(Referral, referral_id)
    hist = db.scalars(select(ReferralHistory).where(ReferralHistory.referral_id == referral_id)
                      .order_by(ReferralHistory.id)).all()
    new = hist[-1]
    events = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "referral",
                                                 AuditEvent.resource_id == str(referral_id),
                                                 AuditEvent.action.like("referral.%"))
                        .order_by(AuditEvent.id)).all()
    event = events[-1]
    notes = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify")
                       .order_by(OutboxMessage.id)).all()
    note = [n for n in notes if n.payload.get("link") == f"/referrals/{referral_id}"][-1]
    return {
        "referral": (ref.status, ref.due_at - new.at if ref.due_at else None, ref.updated_at == new.at),
        "history": (len(hist), new.user_id, new.acting_institution_id, new.from_status, new.to_status, new.reason,
                    new.detail),
        "audit": (len(events), event.user_id, event.username, event.acting_institution_id, event.action,
                  event.patient_id == ref.patient_id, event.access_basis, event.reason, event.detail, event.ip,
                  event.channel, abs((event.at - new.at).total_seconds()) < 5),
        "outbox": ({**note.payload, "link": "L", "params": {**note.payload["params"], "id": "I"}}, note.status,
                   note.attempts, note.dedupe_key, note.processed_at, note.last_error,
                   abs((note.available_at - new.at).total_seconds()) < 5),
    }


def _same_body(a: dict[str, Any], b: dict[str, Any]) -> None:
    skip = {"id", "created_at", "submitted_at", "due_at", "history", "patient_id", "booking_id"}
    assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
    strip = ("at", "detail")  # detail of earlier steps names each one's booking; the new step's is compared
    assert a["history"][-1]["detail"] == b["history"][-1]["detail"]
    assert [{k: v for k, v in h.items() if k not in strip} for h in a["history"]] == \
        [{k: v for k, v in h.items() if k not in strip} for h in b["history"]]


def test_fast_move_writes_the_rows_transition_writes(server):  # type: ignore[no-untyped-def]
    base, factory = server
    with factory() as db:
        w, patient = setup(db, tag="快")
        fast_id, ref_id = (submitted_up(db, w, patient).id for _ in range(2))
        emergency = [submitted_up(db, w, patient, priority="emergency").id for _ in range(2)]
        other = b.patient(db, w.comm_doc, name="王小明", resident_id=b.resident_id(seq=77))
        sched = [drive(db, w, p, "scheduled").id for p in (patient, other)]  # one booking per patient and session
        w.session.day = clock.today_local()  # the booked day has come: arrival needs no reason
        token = _token(db, w.lead_doc)
        db.commit()
    for fast, reference, to, frm in ((fast_id, ref_id, "received", "submitted"),
                                     (*emergency, "received", "submitted"), (*sched, "arrived", "scheduled")):
        got = _post(base, fast, token, to, frm, fast=True)
        want = _post(base, reference, token, to, frm, fast=False)
        assert got.status_code == want.status_code == 200, (got.text, want.text)
        _same_body(got.json(), want.json())
        assert got.json()["status"] == to and got.json()["history"][-1]["to_status"] == to
        with factory() as db:
            assert _rows(db, fast) == _rows(db, reference)


def test_refusals_are_the_reference_errors_and_write_nothing(server):  # type: ignore[no-untyped-def]
    base, factory = server
    with factory() as db:
        w, patient = setup(db, tag="拒")
        ids = [submitted_up(db, w, patient).id for _ in range(2)]
        lead, comm, out = _token(db, w.lead_doc), _token(db, w.comm_doc), _token(db, w.out_doc)
        db.commit()

    def counts() -> tuple[int, int, int]:
        with factory() as db:
            return (db.scalar(select(func.count()).select_from(ReferralHistory)) or 0,
                    db.scalar(select(func.count()).select_from(AuditEvent)) or 0,
                    db.scalar(select(func.count()).select_from(OutboxMessage)) or 0)

    before = counts()
    cases = [(ids[0], lead, "received", "received"),  # no received → received: the route answers (409)
             (ids[0], lead, "arrived", "submitted"),  # nor submitted → arrived
             (ids[0], comm, "received", "submitted"),  # the sender may not receive → 403
             (ids[0], out, "received", "submitted"),  # neither side → 404
             (999_999_999, lead, "received", "submitted")]  # no such referral → 404
    for rid, token, to, expected in cases:
        for lang in ("zh", "en"):
            want = _post(base, rid, token, to, expected, fast=False, lang=lang)
            # a move the table does not declare from expected_status goes to the route even with the fast path on
            got = _post(base, rid, token, to, expected, fast=True, served=(to, expected) == ("received", "submitted"),
                        lang=lang)
            assert (got.status_code, got.json()) == (want.status_code, want.json()), (rid, to, expected)
            assert got.status_code in (403, 404, 409)
    assert counts() == before
    # once received, a late client gets the 409 naming the current status
    assert _post(base, ids[0], lead, "received", "submitted", fast=True).status_code == 200
    late = _post(base, ids[0], lead, "received", "submitted", fast=True, lang="en")
    ref = _post(base, ids[0], lead, "received", "submitted", fast=False, lang="en")
    assert late.status_code == ref.status_code == 409 and late.json() == ref.json()
    assert late.json()["error"] == "referral_state_conflict"


def test_thirty_clients_race_one_move(server):  # type: ignore[no-untyped-def]
    base, factory = server
    with factory() as db:
        w, patient = setup(db, tag="抢")
        rid = submitted_up(db, w, patient).id
        token = _token(db, w.lead_doc)
        db.commit()
    n = 30
    barrier = threading.Barrier(n)
    codes: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            r = client.post(f"{base}/api/v1/referrals/{rid}/transition",
                            json={"to_status": "received", "expected_status": "submitted"},
                            headers={"Authorization": f"Bearer {token}"})
        with lock:
            codes.append(r.status_code)
            if r.status_code == 409:
                assert r.json()["error"] == "referral_state_conflict"

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert Counter(codes) == Counter({200: 1, 409: n - 1})
    with factory() as db:
        assert db.scalar(select(Referral.status).where(Referral.id == rid)) == "received"
        assert db.scalar(select(func.count()).select_from(ReferralHistory).where(
            ReferralHistory.referral_id == rid, ReferralHistory.to_status == "received")) == 1
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.resource_id == str(rid), AuditEvent.action == "referral.received")) == 1
        assert db.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.payload["link"].as_string() == f"/referrals/{rid}",
            OutboxMessage.payload["title"].as_string() == "referral.notify.received")) == 1


def test_a_move_that_waited_for_a_racing_one_gets_the_409_naming_it(server):  # type: ignore[no-untyped-def]
    """The move waits on the row another move holds; once that one commits, the update finds the
    status changed and writes nothing, and the 409 names the status now committed (as the reference)."""
    import time

    from sqlalchemy import text, update

    base, factory = server
    with factory() as db:
        w, patient = setup(db, tag="等")
        rid = submitted_up(db, w, patient).id
        token = _token(db, w.lead_doc)
        db.commit()
    got: list[httpx.Response] = []

    def move() -> None:
        got.append(httpx.post(f"{base}/api/v1/referrals/{rid}/transition", timeout=60,
                              json={"to_status": "received", "expected_status": "submitted"},
                              headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"}))

    with factory() as racer, factory() as watch:
        racer.execute(update(Referral).where(Referral.id == rid).values(status="received"))  # holds the row
        thread = threading.Thread(target=move)
        thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not watch.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'yilianti-fast' "
                "AND wait_event_type = 'Lock'")):
            watch.rollback()
            time.sleep(0.05)
        assert time.monotonic() < deadline, "the move never waited on the row"
        racer.commit()
    thread.join(timeout=60)
    want = _post(base, rid, token, "received", "submitted", fast=False, lang="en")
    assert got[0].status_code == want.status_code == 409
    assert got[0].json() == want.json() and got[0].json()["error"] == "referral_state_conflict"
    with factory() as db:  # nothing written by the move that lost
        assert db.scalar(select(func.count()).select_from(ReferralHistory).where(
            ReferralHistory.referral_id == rid, ReferralHistory.to_status == "received")) == 0
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.resource_id == str(rid), AuditEvent.action == "referral.received")) == 0


def test_moves_that_arrive_together_each_get_their_own_answer(server, monkeypatch):  # type: ignore[no-untyped-def]
    import asyncio

    from tests.referral.helpers import history_count
    from yilianti.fastdb import group as fastgroup
    from yilianti.fastdb import pool as fastpool
    from yilianti.referral import fastpath
    from yilianti.referral.states import Status

    _, factory = server
    with factory() as db:
        w, patient = setup(db, tag="批")
        ids = [submitted_up(db, w, patient).id for _ in range(4)]
        db.commit()
        lead, comm, out = w.lead_doc, w.comm_doc, w.out_doc
        steps = [history_count(db, i) for i in ids]
    sizes: list[int] = []
    execute = fastpath._Mover.execute

    async def counted(self, conn, items):  # type: ignore[no-untyped-def]
        sizes.append(len(items))
        return await execute(self, conn, items)

    monkeypatch.setattr(fastpath._Mover, "execute", counted)
    moves = [(lead, ids[0]),    # received
             (lead, ids[1]),    # received
             (comm, ids[2]),    # the sender may not receive: 403
             (out, ids[3]),     # neither side: 404
             (lead, 999_999),   # no such referral: 404
             (lead, ids[0])]    # the same referral again: the next statement, 409 naming 已接收

    async def main() -> list[Any]:
        fastgroup._groups[fastpath._Mover] = (asyncio.get_running_loop(), fastpath._Mover(lanes=1))
        try:
            return await asyncio.gather(*(fastpath.move(s, rid, Status.received, Status.submitted, "10.0.0.7")
                                          for s, rid in moves))
        finally:
            await fastpool.dispose()
            fastgroup._groups.pop(fastpath._Mover, None)

    answers = asyncio.run(main())
    assert sizes == [5, 1]
    assert [a["id"] for a in answers[:2]] == ids[:2]
    assert all(a["status"] == "received" and a["side"] == "receiver" for a in answers[:2])
    assert [h["to_status"] for h in answers[0]["history"]][-1] == "received"
    assert [type(a).__name__ for a in answers[2:]] == ["Forbidden", "NotFound", "NotFound", "Conflict"]
    assert answers[5].code == "referral_state_conflict" and answers[5].params["current"] == "已接收"
    with factory() as db:
        assert [db.get(Referral, i).status for i in ids] == ["received", "received", "submitted", "submitted"]
        assert [history_count(db, i) - n for i, n in zip(ids, steps, strict=True)] == [1, 1, 0, 0]
        moved = db.scalars(select(AuditEvent).where(AuditEvent.action == "referral.received",
                                                    AuditEvent.resource_id.in_([str(i) for i in ids]))).all()
        assert sorted(int(e.resource_id) for e in moved) == ids[:2]
        assert {(e.user_id, e.acting_institution_id, e.ip) for e in moved} == {
            (lead.user_id, lead.acting_institution_id, "10.0.0.7")}


def test_an_arrival_before_the_booked_day_goes_to_the_route_which_asks_why(server):  # type: ignore[no-untyped-def]
    """The fast statement compiles scheduling.rules.booked_day_reached: an early arrival is not moved there; the
    route answers as the reference does (422 on `reason`), and with a reason the route records it."""
    base, factory = server
    with factory() as db:
        w, patient = setup(db, tag="早")
        ref_id = drive(db, w, patient, "scheduled").id  # the session is three days ahead
        token = _token(db, w.lead_doc)
        db.commit()
    got = _post(base, ref_id, token, "arrived", "scheduled", fast=True, served=False)
    assert got.status_code == 422 and "reason" in got.json()["fields"], got.text
    with factory() as db:
        assert db.get(Referral, ref_id).status == "scheduled"  # type: ignore[union-attr]
    r = httpx.post(f"{base}/api/v1/referrals/{ref_id}/transition",
                   json={"to_status": "arrived", "expected_status": "scheduled", "reason": "家长提前带患儿到院"},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["history"][-1]["reason"] == "家长提前带患儿到院", r.text
