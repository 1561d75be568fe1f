"""Scheduling JSON API: outcomes, and every refusal changes nothing."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import func, select

from tests import builders as b
from tests.scheduling.helpers import World, world
from yilianti.kit import clock
from yilianti.models.scheduling import Booking, BookingRequest, ClinicSession, Slot


def _bookings(db) -> int:  # type: ignore[no-untyped-def]
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(Booking)) or 0)


def _login(client, subject) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"X-CSRF-Token": b.login(client, subject.username)}


def _avail(client, session_id: int) -> dict:  # type: ignore[no-untyped-def,type-arg]
    r = client.get(f"/api/v1/sessions/{session_id}/availability")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_community_doctor_books_through_the_api(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=6)
    patient = b.patient(db, w.comm_doc, name="王小虎")
    h = _login(client, w.comm_doc)

    found = client.get("/api/v1/sessions", params={"q": "儿童呼吸"}).json()
    assert [s["id"] for s in found] == [w.session.id]
    assert found[0]["institution_name"] == "首都儿科研究所" and found[0]["practitioner_name"] == "张儿科"
    assert (found[0]["free_reserved"], found[0]["free_public"]) == (2, 4)
    av = _avail(client, w.session.id)
    assert av["pools"] == ["reserved", "public"] and av["bookable"] and av["reserve_cutoff_at"]
    slots = client.get(f"/api/v1/sessions/{w.session.id}/slots", params={"pool": "reserved"}).json()
    assert len(slots) == 2 and all(s["pool"] == "reserved" and s["starts_at"] for s in slots)

    r = client.post("/api/v1/bookings", json={"session_id": w.session.id, "patient_id": patient.id,
                                              "slot_id": slots[1]["id"]}, headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["number"].startswith(f"{w.day:%Y%m%d}-") and body["pool"] == "reserved"
    assert body["seq"] == slots[1]["seq"] and body["slot_starts_at"] == slots[1]["starts_at"]
    assert body["site_institution_id"] == w.lead.id and body["booked_by_institution_id"] == w.community.id
    assert _avail(client, w.session.id)["free_reserved"] == 1
    assert [x["id"] for x in client.get("/api/v1/bookings").json()] == [body["id"]]
    assert client.get(f"/api/v1/bookings/{body['id']}").json()["number"] == body["number"]

    _login(client, w.lead_coord)
    incoming = client.get("/api/v1/bookings", params={"scope": "incoming"}).json()
    assert [x["number"] for x in incoming] == [body["number"]]
    assert client.get("/api/v1/bookings").json() == []  # nothing made by the lead itself


def test_every_refusal_has_its_code_and_changes_nothing(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=2)
    p1 = b.patient(db, w.comm_doc, name="甲一", resident_id=b.resident_id(seq=1))
    p2 = b.patient(db, w.comm_doc, name="乙二", resident_id=b.resident_id(seq=2))
    p3 = b.patient(db, w.comm_doc, name="丙三", resident_id=b.resident_id(seq=3))
    stranger = b.patient(db, w.out_doc, name="赵六", resident_id=b.resident_id(seq=33))
    h = _login(client, w.comm_doc)

    def refused(payload, status: int, code: str, headers=h) -> dict:  # type: ignore[no-untyped-def,type-arg]
        before = _bookings(db)
        r = client.post("/api/v1/bookings", json=payload, headers=headers)
        assert r.status_code == status and r.json()["error"] == code, r.text
        assert _bookings(db) == before
        return r.json()  # type: ignore[no-any-return]

    refused({"session_id": 999999, "patient_id": p1.id}, 404, "not_found")
    refused({"session_id": w.session.id, "patient_id": 999999}, 404, "not_found")
    refused({"session_id": w.session.id, "patient_id": stranger.id}, 404, "not_found")  # no care relationship
    body = refused({"session_id": "abc", "patient_id": p1.id}, 422, "invalid_input")
    assert "session_id" in body["fields"]
    assert "patient_id" in refused({"session_id": w.session.id}, 422, "invalid_input")["fields"]
    refused({"session_id": w.session.id, "patient_id": p1.id, "pool": "vip"}, 422, "invalid_input")

    assert client.post("/api/v1/bookings", json={"session_id": w.session.id, "patient_id": p1.id},
                       headers=h).status_code == 201
    assert refused({"session_id": w.session.id, "patient_id": p1.id}, 409, "duplicate_booking")["message"]
    assert client.post("/api/v1/bookings", json={"session_id": w.session.id, "patient_id": p2.id},
                       headers=h).status_code == 201
    full = refused({"session_id": w.session.id, "patient_id": p3.id}, 409, "slot_full")
    assert "候补" in full["message"]
    r = client.post("/api/v1/bookings", json={"session_id": w.session.id, "patient_id": p3.id},
                    headers={**h, "Accept-Language": "en"})
    assert r.status_code == 409 and "wait-list" in r.json()["message"]

    # a session that has started
    with clock.frozen(datetime.combine(w.day, time(9, 0), clock.SHANGHAI)):
        refused({"session_id": w.session.id, "patient_id": p3.id}, 409, "session_not_bookable")

    # a site outside the alliance
    out_patient = b.patient(db, w.out_doc, name="李四", resident_id=b.resident_id(seq=44))
    out_h = _login(client, w.out_doc)
    refused({"session_id": w.session.id, "patient_id": out_patient.id}, 403, "forbidden", out_h)
    assert client.get(f"/api/v1/sessions/{w.session.id}/slots").json() == []
    assert client.get("/api/v1/sessions").json() == []  # not a partner: nothing listed

    # a cancelled session
    lead_h = _login(client, w.lead_coord)
    r = client.post(f"/api/v1/sessions/{w.session.id}/cancel", json={"reason": ""}, headers=lead_h)
    assert r.status_code == 422 and "reason" in r.json()["fields"]
    r = client.post(f"/api/v1/sessions/{w.session.id}/cancel", json={"reason": "专家外出会诊"}, headers=lead_h)
    assert r.json() == {"session_id": w.session.id, "bookings_cancelled": 2}
    h = _login(client, w.comm_doc)
    refused({"session_id": w.session.id, "patient_id": p3.id}, 409, "session_not_bookable", h)


def test_cancel_frees_the_slot_and_site_records_arrival(db, client) -> None:  # type: ignore[no-untyped-def]
    w: World = world(db, capacity=3)
    later_day = w.day + timedelta(days=7)
    from yilianti.scheduling import schedules

    schedules.generate_sessions(db, w.lead_coord, w.schedule.id, later_day, later_day)
    later = db.scalar(select(ClinicSession).where(ClinicSession.day == later_day))
    patient = b.patient(db, w.comm_doc)
    h = _login(client, w.comm_doc)
    first = client.post("/api/v1/bookings", json={"session_id": w.session.id, "patient_id": patient.id},
                        headers=h).json()
    assert _avail(client, w.session.id)["free_reserved"] == 0
    r = client.post(f"/api/v1/bookings/{first['id']}/cancel", json={"reason": "家长改期"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["cancel_reason"] == "家长改期"
    assert _avail(client, w.session.id)["free_reserved"] == 1
    assert client.post(f"/api/v1/bookings/{first['id']}/cancel", json={}, headers=h).status_code == 409

    second = client.post("/api/v1/bookings", json={"session_id": w.session.id, "patient_id": patient.id},
                         headers=h).json()
    r = client.post(f"/api/v1/bookings/{second['id']}/reschedule", json={"session_id": later.id}, headers=h)
    assert r.status_code == 201, r.text
    moved = r.json()
    assert moved["session_id"] == later.id and moved["rescheduled_from_id"] == second["id"]
    assert client.get(f"/api/v1/bookings/{second['id']}").json()["status"] == "cancelled"
    r = client.post(f"/api/v1/bookings/{moved['id']}/arrive", headers=h)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"  # only the session's site

    lead_h = _login(client, w.lead_coord)
    early = client.post(f"/api/v1/bookings/{moved['id']}/arrive", headers=lead_h)  # not the day: a reason is asked
    assert early.status_code == 422 and "arrival_reason" in early.json()["fields"], early.text
    with clock.frozen(datetime.combine(later_day, time(8, 40), clock.SHANGHAI)):
        r = client.post(f"/api/v1/bookings/{moved['id']}/arrive", headers=lead_h)
        assert r.status_code == 200 and r.json()["status"] == "arrived" and r.json()["arrived_at"]
        assert client.post(f"/api/v1/bookings/{moved['id']}/no-show", headers=lead_h).status_code == 409
    # a booking of another site is not visible at all
    out_h = _login(client, w.out_doc)
    assert client.get(f"/api/v1/bookings/{moved['id']}").status_code == 404
    assert client.post(f"/api/v1/bookings/{moved['id']}/cancel", json={}, headers=out_h).status_code == 404


def test_schedule_template_generate_and_slots(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=2)
    expert = b.practitioner(db, w.lead, "李心电", "副主任医师")
    h = _login(client, w.lead_coord)
    r = client.post("/api/v1/schedules", json={"institution_id": w.lead.id, "kind": "practitioner",
                                               "name": "李心电 专家门诊"}, headers=h)
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    r = client.post("/api/v1/schedules", json={
        "institution_id": w.lead.id, "kind": "practitioner", "name": "李心电 专家门诊", "practitioner_id": expert.id,
        "specialty": "儿童心脏", "location": "门诊楼2层", "reserve_alliance_id": w.alliance.id}, headers=h)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    day = clock.today_local() + timedelta(days=4)
    r = client.post(f"/api/v1/schedules/{sid}/templates", json={
        "weekday": day.isoweekday(), "start_time": "14:00", "end_time": "13:00", "capacity": 9}, headers=h)
    assert r.status_code == 422
    r = client.post(f"/api/v1/schedules/{sid}/templates", json={
        "weekday": day.isoweekday(), "start_time": "14:00", "end_time": "16:00", "capacity": 9, "timed": False},
        headers=h)
    assert r.status_code == 201 and r.json()["start_time"] == "14:00:00"
    r = client.post(f"/api/v1/schedules/{sid}/generate", json={"start": day.isoformat(),
                                                              "end": (day + timedelta(days=6)).isoformat()}, headers=h)
    assert r.json() == {"created": 1}
    [session] = client.get("/api/v1/sessions", params={"schedule_id": sid, "start": day.isoformat()}).json()
    assert (session["capacity"], session["reserved_capacity"]) == (9, 3)

    # a community doctor cannot create schedules at the lead hospital
    ch = _login(client, w.comm_doc)
    r = client.post("/api/v1/schedules", json={"institution_id": w.lead.id, "kind": "clinic", "name": "儿科普通门诊"},
                    headers=ch)
    assert r.status_code == 403
    slots = client.get(f"/api/v1/sessions/{session['id']}/slots").json()
    assert len(slots) == 9 and all(s["starts_at"] is None for s in slots)  # by number (按序号)
    assert db.scalar(select(func.count()).select_from(Slot).where(Slot.session_id == session["id"])) == 9


def test_waitlist_beds_and_sinking(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=30)
    patient = b.patient(db, w.comm_doc, name="王小虎")
    h = _login(client, w.comm_doc)
    r = client.post("/api/v1/booking-requests", json={"patient_id": patient.id, "target_institution_id": w.lead.id,
                                                      "specialty": "儿童呼吸", "contact_by_days": 2}, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "waiting" and not r.json()["overdue"]
    r = client.post("/api/v1/booking-requests", json={"patient_id": patient.id,
                                                      "target_institution_id": w.outsider.id}, headers=h)
    assert r.status_code == 403
    assert db.scalar(select(func.count()).select_from(BookingRequest)) == 1
    assert len(client.get("/api/v1/booking-requests", params={"direction": "outgoing"}).json()) == 1
    client.post("/api/v1/bookings", json={"session_id": w.session.id, "patient_id": patient.id}, headers=h)

    lead_h = _login(client, w.lead_coord)
    assert [x["patient_id"] for x in client.get("/api/v1/booking-requests").json()] == [patient.id]
    r = client.post("/api/v1/wards", json={"institution_id": w.lead.id, "name": "儿内一病区", "beds_total": 8,
                                           "occupied": 2, "reserve_alliance_id": w.alliance.id}, headers=lead_h)
    assert r.status_code == 201 and r.json()["reserved_beds"] == 2 and r.json()["free_public"] == 4
    ward_id = r.json()["id"]
    [month] = client.get(f"/api/v1/alliances/{w.alliance.id}/sinking").json()
    assert (month["offered"], month["reserved"], month["reserved_booked"]) == (30, 10, 1)
    assert abs(month["sinking_ratio"] - 1 / 3) < 1e-9 and abs(month["reserve_use"] - 0.1) < 1e-9

    h = _login(client, w.comm_doc)
    assert [x["name"] for x in client.get("/api/v1/wards").json()] == ["儿内一病区"]
    r = client.post("/api/v1/bed-reservations", json={"ward_id": ward_id, "patient_id": patient.id}, headers=h)
    assert r.status_code == 201 and r.json()["pool"] == "reserved"
    res_id = r.json()["id"]
    lead_h = _login(client, w.lead_coord)
    r = client.post(f"/api/v1/bed-reservations/{res_id}/admit", headers=lead_h)
    assert r.status_code == 200 and r.json()["status"] == "admitted"
    assert client.post(f"/api/v1/bed-reservations/{res_id}/release", headers=lead_h).status_code == 409

    _login(client, w.out_doc)
    assert client.get(f"/api/v1/alliances/{w.alliance.id}/sinking").status_code == 403
    assert client.get("/api/v1/alliances/999999/sinking").status_code == 404
    assert client.get("/api/v1/wards").json() == []


def test_openapi_documents_the_booking_api(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/api/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/v1/sessions", "/api/v1/sessions/{session_id}/availability", "/api/v1/sessions/{session_id}/slots",
                 "/api/v1/bookings", "/api/v1/bookings/{booking_id}/cancel", "/api/v1/bookings/{booking_id}/reschedule",
                 "/api/v1/booking-requests", "/api/v1/schedules", "/api/v1/wards", "/api/v1/bed-reservations",
                 "/api/v1/alliances/{alliance_id}/sinking"):
        assert path in paths, path
    post = paths["/api/v1/bookings"]["post"]
    assert "BookingOut" in str(post["responses"]["201"]) and "409" in post["responses"]
    assert "BookingIn" in str(post["requestBody"])
