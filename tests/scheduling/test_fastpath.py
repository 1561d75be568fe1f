"""The one-statement booking path on PostgreSQL gives the same outcomes as service.book.

Real commits in a database of its own, a real uvicorn server, API tokens as member systems
use them; 60 concurrent bookers for 20 slots must give exactly 20 bookings.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.live import api_token, live_server
from tests.scheduling.helpers import world
from yilianti.authz import policy
from yilianti.models import AuditEvent, Booking, Institution, Slot
from yilianti.models.patient import AccessGrant

pytestmark = pytest.mark.skipif(os.environ.get("YILIANTI_TEST_BACKEND") != "postgresql",
                                reason="the async booking path runs on PostgreSQL only")


def _token(db, subject) -> str:  # type: ignore[no-untyped-def]
    return api_token(db, subject)


@pytest.fixture(scope="module")
def server(test_db):  # type: ignore[no-untyped-def]
    with live_server(test_db, booking_fast_path=True, auth_cache_seconds=5.0) as served:
        yield served


def test_fast_booking_writes_booking_and_audit(server):  # type: ignore[no-untyped-def]
    base, factory = server
    with factory() as db:
        w = world(db, capacity=6, tag="快")
        patient = b.patient(db, w.comm_doc, name="快速预约").id
        stranger = b.patient(db, w.out_doc, name="联盟外患者", resident_id=b.resident_id(seq=98)).id
        token, out_token = _token(db, w.comm_doc), _token(db, w.out_doc)
        db.commit()
        session_id, lead_id = w.session.id, w.lead.id
        w_user, w_inst = w.comm_doc.user_id, w.comm_doc.acting_institution_id
    from yilianti.scheduling import fastpath

    h = {"Authorization": f"Bearer {token}"}
    before_stats = fastpath.stats["statement"]
    r = httpx.post(f"{base}/api/v1/bookings", json={"session_id": session_id, "patient_id": patient}, headers=h)
    assert r.status_code == 201, r.text
    assert fastpath.stats["statement"] == before_stats + 1  # booked by the one-statement path
    body = r.json()
    assert body["pool"] == "reserved" and body["seq"] == 1 and body["site_institution_id"] == lead_id
    with factory() as db:
        booking = db.get(Booking, body["id"])
        assert booking is not None and booking.number == body["number"] and booking.status == "booked"
        assert db.scalar(select(Slot.booked).where(Slot.id == booking.slot_id)) is True
        # the booking itself is the lead's access basis: no grant row, no grant audit
        assert db.scalar(select(func.count()).select_from(AccessGrant).where(
            AccessGrant.patient_id == patient)) == 0
        lead_doc = b.subject_for(db, b.user(db, db.get(Institution, lead_id), "doctor"))
        db.commit()
        access = policy.decide(db, lead_doc, patient)
        assert access is not None and access.basis == "grant"
        events = {(e.action, e.resource_type): e for e in db.scalars(
            select(AuditEvent).where(AuditEvent.patient_id == patient))}
        # the change is audited in the booking's own transaction
        assert ("grant", "access_grant") not in events
        assert events[("create", "booking")].resource_id == str(booking.id)
        assert events[("create", "booking")].channel == "api"
        created_at = events[("create", "booking")].at
    # the read of the patient (service.book's require_patient row, with its basis) arrives with the
    # batched read audits, flushed at least every second
    deadline, read = time.monotonic() + 3, None
    while read is None and time.monotonic() < deadline:
        time.sleep(0.1)
        with factory() as db:
            read = db.scalar(select(AuditEvent).where(AuditEvent.patient_id == patient, AuditEvent.action == "read",
                                                      AuditEvent.resource_type == "booking_patient"))
    assert read is not None, "the patient read was not audited within the flush interval"
    assert (read.resource_id, read.access_basis, read.channel, read.detail) == (str(patient), "own", "api", None)
    assert read.user_id == w_user and read.acting_institution_id == w_inst and read.at == created_at

    # the same errors as the reference implementation, and nothing written
    def count() -> int:
        with factory() as db:
            return db.scalar(select(func.count()).select_from(Booking)) or 0

    before = count()
    dup = httpx.post(f"{base}/api/v1/bookings", json={"session_id": session_id, "patient_id": patient}, headers=h)
    assert dup.status_code == 409 and dup.json()["error"] == "duplicate_booking"
    unseen = httpx.post(f"{base}/api/v1/bookings", json={"session_id": session_id, "patient_id": stranger},
                        headers=h)
    assert unseen.status_code == 404
    gone = httpx.post(f"{base}/api/v1/bookings", json={"session_id": 999999, "patient_id": patient}, headers=h)
    assert gone.status_code == 404
    outsider = httpx.post(f"{base}/api/v1/bookings", json={"session_id": session_id, "patient_id": stranger},
                          headers={"Authorization": f"Bearer {out_token}"})
    assert outsider.status_code == 403
    assert count() == before


def test_refusals_answered_by_the_statement_are_the_reference_errors(server):  # type: ignore[no-untyped-def]
    base, factory = server
    with factory() as db:
        w = world(db, capacity=2, tag="满")
        patients = [b.patient(db, w.comm_doc, name="约满" + "甲乙丙"[i], resident_id=b.resident_id(seq=60 + i)).id
                    for i in range(3)]
        token = _token(db, w.comm_doc)
        db.commit()
        session_id = w.session.id
    from yilianti.scheduling import fastpath

    h = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}
    for p in patients[:2]:
        r = httpx.post(f"{base}/api/v1/bookings", json={"session_id": session_id, "patient_id": p}, headers=h)
        assert r.status_code == 201, r.text
    refused, fallback = fastpath.stats["refused"], fastpath.stats["fallback"]
    full = httpx.post(f"{base}/api/v1/bookings", json={"session_id": session_id, "patient_id": patients[2]},
                      headers=h)
    assert full.status_code == 409
    assert full.json() == {"error": "slot_full", "message": "This session is full; you can put the request on "
                                                            "the wait-list"}
    dup = httpx.post(f"{base}/api/v1/bookings", json={"session_id": session_id, "patient_id": patients[0]},
                     headers={"Authorization": f"Bearer {token}"})
    assert dup.status_code == 409 and dup.json()["error"] == "duplicate_booking"
    assert dup.json()["message"] == "该患者在此出诊时段已有预约"
    # answered from the statement's row, not by a second pass through service.book
    assert (fastpath.stats["refused"], fastpath.stats["fallback"]) == (refused + 2, fallback)
    # a body the schema rejects is the route's 422, as before
    bad = httpx.post(f"{base}/api/v1/bookings", json={"session_id": "x"}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_input"
    with factory() as db:
        assert db.scalar(select(func.count()).select_from(Booking).where(Booking.session_id == session_id)) == 2


def test_sixty_concurrent_bookers_over_http(server):  # type: ignore[no-untyped-def]
    base, factory = server
    with factory() as db:
        w = world(db, capacity=20, tag="并")
        patients = [b.patient(db, w.comm_doc, name="并发" + "甲乙丙丁戊己庚辛壬癸"[i % 10] + "子丑寅卯辰巳"[i // 10],
                              resident_id=b.resident_id(seq=i % 50, male=i < 50, region="110102")).id
                    for i in range(60)]
        token = _token(db, w.comm_doc)
        db.commit()
        session_id = w.session.id
    barrier = threading.Barrier(60)
    codes: list[int] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            r = client.post(f"{base}/api/v1/bookings", json={"session_id": session_id, "patient_id": patients[i]},
                            headers={"Authorization": f"Bearer {token}"})
        with lock:
            codes.append(r.status_code)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert Counter(codes) == Counter({201: 20, 409: 40})
    with factory() as db:
        active = db.scalars(select(Booking).where(Booking.session_id == session_id,
                                                  Booking.status == "booked")).all()
        assert len(active) == 20 and len({x.slot_id for x in active}) == 20
        assert db.scalar(select(func.count()).select_from(Slot).where(
            Slot.session_id == session_id, Slot.booked.is_(True))) == 20
