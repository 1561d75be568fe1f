"""What the lead coordinator and the community doctor see and do on the scheduling pages."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from tests import builders as b
from tests.scheduling.helpers import world
from yilianti.kit import clock
from yilianti.models.scheduling import Booking, ClinicSession, Schedule, ScheduleTemplate
from yilianti.scheduling import beds, schedules
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling import repository as sched_repo
from yilianti.scheduling.schemas import BookingIn, WardIn


def _by_id(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert m, f"no element {element_id}"
    return m.group(1).strip()


def _table(html: str, table_id: str) -> str:
    m = re.search(rf'<table id="{table_id}"[^>]*>(.*?)</table>', html, re.S)
    assert m, f"no table {table_id}"
    return m.group(1)


def test_lead_coordinator_creates_schedule_template_and_sessions(db, client) -> None:  # type: ignore[no-untyped-def]
    lead = b.institution(db, "首都儿科研究所", kind="specialty", level=3)
    community = b.institution(db, "太阳宫社区卫生服务中心", kind="community_center", level=1)
    alliance = b.alliance(db, (lead, "lead"), (community, "member"), name="北京朝阳区儿童医联体")
    dept = b.department(db, lead, "儿童呼吸科")
    expert = b.practitioner(db, lead, "刘晓燕", "主任医师")
    b.user(db, lead, "coordinator", username="sgrcoord")
    csrf = b.login(client, "sgrcoord")

    entry = client.get("/scheduling").text
    assert 'id="entry-schedules"' in entry and "排班管理" in entry
    form = client.get("/scheduling/schedules/new")
    assert form.status_code == 200 and "刘晓燕" in form.text and "北京朝阳区儿童医联体" in form.text

    # an expert schedule without the expert: field error, nothing stored
    r = client.post("/scheduling/schedules/new", data={
        "csrf_token": csrf, "kind": "practitioner", "name": "刘晓燕 专家门诊"})
    assert r.status_code == 422 and "专家号需要指定医师" in _by_id(r.text, "err-practitioner_id")
    assert db.scalar(select(func.count()).select_from(Schedule)) == 0

    r = client.post("/scheduling/schedules/new", data={
        "csrf_token": csrf, "kind": "practitioner", "name": "刘晓燕 专家门诊", "practitioner_id": str(expert.id),
        "department_id": str(dept.id), "specialty": "儿童呼吸", "location": "门诊楼3层 儿科专家诊区",
        "instructions": "请携带既往检查结果", "fee_yuan": "50", "reserve_alliance_id": str(alliance.id),
        "reserve_share": ""}, follow_redirects=False)
    assert r.status_code == 303, r.text
    schedule_id = int(re.search(r"/scheduling/schedules/(\d+)", r.headers["location"]).group(1))  # type: ignore[union-attr]
    page = client.get(r.headers["location"]).text
    assert "刘晓燕 专家门诊" in _by_id(page, "schedule-name") and "北京朝阳区儿童医联体" in page

    day = clock.today_local() + timedelta(days=5)
    # end before start: a field error on the end time, no template stored
    r = client.post(f"/scheduling/schedules/{schedule_id}/templates", data={
        "csrf_token": csrf, "weekday": str(day.isoweekday()), "start_time": "11:30", "end_time": "08:00",
        "capacity": "12", "timed": "1"})
    assert r.status_code == 422
    assert "结束时间应晚于开始时间" in _by_id(r.text, "err-end_time")
    assert db.scalar(select(func.count()).select_from(ScheduleTemplate)) == 0
    r = client.post(f"/scheduling/schedules/{schedule_id}/templates", data={
        "csrf_token": csrf, "weekday": str(day.isoweekday()), "start_time": "08:00", "end_time": "11:00",
        "capacity": "12", "timed": "1"}, follow_redirects=False)
    assert r.status_code == 303

    r = client.post(f"/scheduling/schedules/{schedule_id}/generate", data={
        "csrf_token": csrf, "start": day.isoformat(), "end": (day + timedelta(days=6)).isoformat()},
        follow_redirects=False)
    assert r.status_code == 303 and "generated=1" in r.headers["location"]
    page = client.get(r.headers["location"]).text
    assert "已生成 1 个出诊时段" in page
    session = db.scalar(select(ClinicSession).where(ClinicSession.schedule_id == schedule_id))
    assert session is not None and (session.capacity, session.reserved_capacity) == (12, 4)
    row = re.search(rf'<tr id="session-{session.id}".*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    assert '<td class="free-reserved">4</td>' in row and '<td class="free-public">8</td>' in row
    assert "前为基层预留" in row and clock.fmt_local(session.reserve_cutoff_at) in row
    assert "刘晓燕 专家门诊" in client.get("/scheduling/schedules").text

    # a community doctor cannot manage schedules
    b.user(db, community, "doctor", username="sygdoc")
    b.login(client, "sygdoc")
    assert client.get("/scheduling/schedules").status_code == 403
    assert client.get(f"/scheduling/schedules/{schedule_id}").status_code == 403


def test_community_doctor_books_from_session_page_and_cancel_frees_the_slot(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=6)
    patient = b.patient(db, w.comm_doc, name="王小虎")
    csrf = b.login(client, w.comm_doc.username)

    search = client.get("/scheduling/book", params={"q": "儿童呼吸"}).text
    row = re.search(rf'<tr id="result-{w.session.id}".*?</tr>', search, re.S).group(0)  # type: ignore[union-attr]
    assert "张儿科" in row and "首都儿科研究所" in row
    assert '<td class="free-reserved">2</td>' in row and '<td class="free-public">4</td>' in row
    assert "预留号" in row  # this grassroots site may use the reserve

    page = client.get(f"/scheduling/sessions/{w.session.id}").text
    assert _by_id(page, "free-reserved") == "2" and _by_id(page, "free-public") == "4"
    assert 'id="book-form"' in page and 'id="pick-patient_id"' in page  # the type-ahead picker
    chosen = client.get(f"/scheduling/sessions/{w.session.id}", params={"patient_id": patient.id}).text
    assert f'id="f-patient_id" value="{patient.id}"' in chosen and "王小虎" in chosen

    # no patient chosen: a field error, nothing booked
    r = client.post(f"/scheduling/sessions/{w.session.id}/book", data={"csrf_token": csrf})
    assert r.status_code == 422 and "请选择患者" in _by_id(r.text, "err-patient_id")
    assert db.scalar(select(func.count()).select_from(Booking)) == 0

    r = client.post(f"/scheduling/sessions/{w.session.id}/book",
                    data={"csrf_token": csrf, "patient_id": str(patient.id), "pool": "reserved"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/slip")
    slip = client.get(r.headers["location"]).text
    booking = db.scalar(select(Booking).where(Booking.patient_id == patient.id))
    assert booking is not None and booking.pool == "reserved"
    assert _by_id(slip, "booking-number") == booking.number
    place = _by_id(slip, "slip-place")
    assert "首都儿科研究所" in place and "门诊楼3层 儿科专家诊区" in place
    assert "王小虎" in slip and "110105********" in slip  # masked resident ID
    assert "太阳宫社区卫生服务中心" in _by_id(slip, "slip-site")
    assert "请携带身份证" in slip

    # the same patient again: a clear conflict, still one booking
    r = client.post(f"/scheduling/sessions/{w.session.id}/book",
                    data={"csrf_token": csrf, "patient_id": str(patient.id)})
    assert r.status_code == 409 and "已有预约" in _by_id(r.text, "book-error")
    assert db.scalar(select(func.count()).select_from(Booking)) == 1

    mine = client.get("/scheduling/bookings").text
    assert booking.number in _table(mine, "bookings") and 'id="count-booked">1<' in mine
    lead = b.login(client, w.lead_coord.username)
    incoming = client.get("/scheduling/bookings", params={"tab": "incoming"}).text
    assert booking.number in _table(incoming, "bookings") and "太阳宫社区卫生服务中心" in incoming
    assert booking.number not in _table(client.get("/scheduling/bookings").text, "bookings")
    del lead

    csrf = b.login(client, w.comm_doc.username)
    detail = client.get(f"/bookings/{booking.id}").text
    assert 'id="cancel-form"' in detail and 'id="arrive-button"' not in detail  # only the site marks arrival
    r = client.post(f"/bookings/{booking.id}/cancel", data={"csrf_token": csrf, "reason": "家长改期"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "已取消" in _by_id(client.get(r.headers["location"]).text, "booking-status")
    page = client.get(f"/scheduling/sessions/{w.session.id}").text
    assert _by_id(page, "free-reserved") == "2" and _by_id(page, "free-public") == "4"
    cancelled = client.get("/scheduling/bookings", params={"status": "cancelled"}).text
    assert 'id="count-cancelled">1<' in cancelled and booking.number in cancelled


def test_full_session_offers_the_waitlist(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=1)
    first = b.patient(db, w.comm_doc, name="甲一", resident_id=b.resident_id(seq=1))
    second = b.patient(db, w.comm_doc, name="乙二", resident_id=b.resident_id(seq=2))
    booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=first.id))
    csrf = b.login(client, w.comm_doc2.username)
    page = client.get(f"/scheduling/sessions/{w.session.id}").text
    assert _by_id(page, "free-reserved") == "0" and 'id="no-slots"' in page
    r = client.post(f"/scheduling/sessions/{w.session.id}/book",
                    data={"csrf_token": csrf, "patient_id": str(second.id)})
    assert r.status_code == 409 and "已约满" in _by_id(r.text, "book-error") and 'id="waitlist-button"' in r.text
    r = client.post("/scheduling/waitlist", data={
        "csrf_token": csrf, "from_session": str(w.session.id), "patient_id": str(second.id),
        "target_institution_id": str(w.lead.id), "schedule_id": str(w.schedule.id), "specialty": "儿童呼吸"},
        follow_redirects=False)
    assert r.status_code == 303
    b.login(client, w.lead_coord.username)
    incoming = _table(client.get("/scheduling/waitlist").text, "incoming")
    assert "乙二" in incoming and "太阳宫社区卫生服务中心" in incoming


def test_reserve_returned_at_cutoff_is_shown(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=9)
    booking_rules.release_reserves(db, clock.as_utc(w.session.reserve_cutoff_at) + timedelta(seconds=1))
    db.flush()
    b.login(client, w.lead_coord.username)
    page = client.get(f"/scheduling/schedules/{w.schedule.id}").text
    row = re.search(rf'<tr id="session-{w.session.id}".*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    assert "回归公共号池 3 个" in row and '<td class="free-public">9</td>' in row


def test_pages_render_in_both_languages(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=6)
    patient = b.patient(db, w.comm_doc, name="王小虎")
    booking = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patient.id))
    beds.create_ward(db, w.lead_coord, WardIn(institution_id=w.lead.id, name="儿内一病区",
                                                         beds_total=20, occupied=10,
                                                         reserve_alliance_id=w.alliance.id))
    for who, urls in ((w.comm_doc, ["/scheduling", "/scheduling/book", f"/scheduling/sessions/{w.session.id}",
                                    f"/bookings/{booking.id}", f"/bookings/{booking.id}/slip", "/scheduling/bookings",
                                    "/scheduling/waitlist", "/scheduling/beds",
                                    f"/scheduling/sinking?alliance_id={w.alliance.id}"]),
                      (w.lead_coord, ["/scheduling", "/scheduling/schedules", "/scheduling/schedules/new",
                                      f"/scheduling/schedules/{w.schedule.id}", "/scheduling/bookings?tab=incoming",
                                      "/scheduling/beds", f"/scheduling/sessions/{w.session.id}"])):
        b.login(client, who.username)
        for lang in ("zh", "en"):
            client.cookies.set("lang", lang)
            for url in urls:
                r = client.get(url)
                assert r.status_code == 200, (url, lang, r.text[:500])
        client.cookies.delete("lang")
    client.cookies.set("lang", "en")
    b.login(client, w.comm_doc.username)
    page = client.get(f"/scheduling/sessions/{w.session.id}").text
    assert "Reserved" in page and "Public" in page
    client.cookies.delete("lang")


def test_sinking_page_shows_table_and_chart(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=30)
    for i in range(3):
        p = b.patient(db, w.comm_doc, name="患者" + "甲乙丙"[i], resident_id=b.resident_id(seq=i + 5))
        booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=p.id))
    b.login(client, w.comm_doc.username)
    page = client.get("/scheduling/sinking", params={"alliance_id": w.alliance.id}).text
    row = _table(page, "sinking-table")
    assert f"{w.day:%Y-%m}" in row and '<td class="ratio">33.3%</td>' in row and '<td class="use">30.0%</td>' in row
    assert "/static/vendor/echarts/echarts.min.js" in page and 'id="sinking-chart"' in page
    assert "echarts.min.js" not in client.get("/scheduling/bookings").text  # only on this page
    b.login(client, w.out_doc.username)
    assert client.get("/scheduling/sinking", params={"alliance_id": w.alliance.id}).status_code == 403


def test_beds_page_creates_ward_and_reserves_for_member(db, client) -> None:  # type: ignore[no-untyped-def]
    w = world(db, capacity=2)
    csrf = b.login(client, w.lead_coord.username)
    r = client.post("/scheduling/wards", data={"csrf_token": csrf, "name": "儿内一病区", "beds_total": "10",
                                               "occupied": "12", "reserve_alliance_id": str(w.alliance.id)})
    assert r.status_code == 422 and "不能超过床位数" in _by_id(r.text, "err-occupied")
    r = client.post("/scheduling/wards", data={"csrf_token": csrf, "name": "儿内一病区", "beds_total": "10",
                                               "occupied": "5", "reserve_alliance_id": str(w.alliance.id)},
                    follow_redirects=False)
    assert r.status_code == 303
    wards = _table(client.get("/scheduling/beds").text, "wards")
    assert "儿内一病区" in wards and "<td>3</td>" in wards  # ceil(10 × 1/4) reserved

    patient = b.patient(db, w.comm_doc, name="住院甲")
    csrf = b.login(client, w.comm_doc.username)
    page = client.get("/scheduling/beds").text
    assert "儿内一病区" in _table(page, "partner-wards") and 'id="reserve-form"' in page
    assert 'id="pick-patient_id"' in page  # the type-ahead picker
    ward_id = int(re.search(r'<tr id="pward-(\d+)"', page).group(1))  # type: ignore[union-attr]
    r = client.post("/scheduling/bed-reservations", data={"csrf_token": csrf, "patient_id": str(patient.id),
                                                          "ward_id": str(ward_id), "hours": "48"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "住院甲" in _table(client.get("/scheduling/beds").text, "reservations")


def test_site_bookings_name_a_device_schedule_by_its_department(db, client) -> None:  # type: ignore[no-untyped-def]
    # A CT schedule has no practitioner: the list names the department (it once crashed on lazy loading).
    from datetime import time

    from yilianti.scheduling.schemas import BookingIn, ScheduleIn, TemplateIn

    w = world(db)
    dept = b.department(db, w.lead, "医学影像科")
    ct = schedules.create_schedule(db, w.lead_coord, ScheduleIn(
        institution_id=w.lead.id, kind="device", name="CT 1号机", department_id=dept.id, device_type="CT",
        location="医技楼1层", reserve_alliance_id=w.alliance.id))
    schedules.add_template(db, w.lead_coord, ct.id, TemplateIn(
        weekday=w.day.isoweekday(), start_time=time(8, 0), end_time=time(11, 0), capacity=6))
    schedules.generate_sessions(db, w.lead_coord, ct.id, w.day, w.day)
    session = sched_repo.upcoming_sessions(db, schedule_id=ct.id, start=w.day, days=1)[0][0]
    patient = b.patient(db, w.comm_doc, name="赵影像")
    booking = booking_rules.book(db, w.comm_doc, BookingIn(session_id=session.id, patient_id=patient.id))
    b.login(client, w.comm_doc.username)
    r = client.get("/scheduling/bookings")
    assert r.status_code == 200
    rows = _table(r.text, "bookings")
    assert booking.number in rows and "医学影像科" in rows


def test_arrival_before_the_booked_day_asks_why_and_keeps_what_was_typed(db, client) -> None:  # type: ignore[no-untyped-def]
    from yilianti.models.audit import AuditEvent

    w = world(db, capacity=4)  # the session is three days ahead
    patient = b.patient(db, w.comm_doc, name="丙三")
    booking = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patient.id))
    csrf = b.login(client, w.lead_coord.username)
    page = client.get(f"/bookings/{booking.id}").text
    assert 'id="f-arrival_reason"' in page and w.day.isoformat() in page
    r = client.post(f"/bookings/{booking.id}/arrive", data={"csrf_token": csrf, "arrival_reason": "早"})
    assert r.status_code == 422 and 'id="err-arrival_reason"' in r.text and 'value="早"' in r.text
    assert w.day.isoformat() in _by_id(r.text, "err-arrival_reason")
    assert db.get(Booking, booking.id).status == "booked"
    r = client.post(f"/bookings/{booking.id}/arrive", data={"csrf_token": csrf, "arrival_reason": "患儿高热不退，提前就诊"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "已登记到诊" in client.get(r.headers["location"]).text
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "arrive",
                                                AuditEvent.resource_id == str(booking.id))).one()
    assert event.reason == "患儿高热不退，提前就诊" and event.detail == {"early": True}
