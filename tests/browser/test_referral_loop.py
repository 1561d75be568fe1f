"""The whole referral loop in a real browser, two doctors in two browser contexts.

A community doctor at 河西区桃园街社区卫生服务中心 refers a child up to 天津市儿童医院; the
specialist receives and accepts, books an expert session through the booking page, links the
booking, marks arrival, returns the outcome, closes, and refers the child back down with a
follow-up plan; the community doctor accepts the down-referral and sees the follow-up task.
"""

from __future__ import annotations

from datetime import time, timedelta

from playwright.sync_api import expect

from tests import builders as b
from tests.browser.conftest import login, pick_patient
from yilianti.kit import clock
from yilianti.scheduling import repository as sched_repo
from yilianti.scheduling import schedules
from yilianti.scheduling.schemas import ScheduleIn, TemplateIn


def _seed(db):  # type: ignore[no-untyped-def]
    lead = b.institution(db, "天津市儿童医院", kind="specialty", level=3, province="天津")
    comm = b.institution(db, "河西区桃园街社区卫生服务中心", kind="community_center", level=1, province="天津")
    alliance = b.alliance(db, (lead, "lead"), (comm, "member"), name="天津市儿科医疗联合体")
    expert = b.practitioner(db, lead, "刘呼吸", "主任医师")
    coord = b.subject_for(db, b.user(db, lead, "coordinator"))
    schedule = schedules.create_schedule(db, coord, ScheduleIn(
        institution_id=lead.id, kind="practitioner", name="刘呼吸 专家门诊", practitioner_id=expert.id,
        specialty="儿童呼吸", location="门诊楼2层 呼吸专家诊区", reserve_alliance_id=alliance.id))
    day = clock.today_local() + timedelta(days=3)
    schedules.add_template(db, coord, schedule.id, TemplateIn(
        weekday=day.isoweekday(), start_time=time(8, 0), end_time=time(11, 30), capacity=10))
    assert schedules.generate_sessions(db, coord, schedule.id, day, day) == 1
    session = sched_repo.upcoming_sessions(db, schedule_id=schedule.id, start=day, days=1)[0][0]
    comm_doc = b.user(db, comm, "doctor", username="taoyuan-doc")
    b.user(db, lead, "doctor", username="tjch-specialist")
    b.patient(db, b.subject_for(db, comm_doc), name="赵乐乐", resident_id=b.resident_id(region="120103", seq=7))
    return {"session": session.id, "lead": lead.id}


def _new_page(browser, base: str, username: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    pg = context.new_page()
    pg.set_default_timeout(15000)
    login(pg, base, username, b.PASSWORD)
    return context, pg


def _act(page, action: str, base: str, ref_id: int, flash: str) -> None:  # type: ignore[no-untyped-def]
    page.click(f"form[action='/referrals/{ref_id}/{action}'] button[type=submit]")
    page.wait_for_url(f"{base}/referrals/{ref_id}?done={action}")
    assert flash in page.inner_text(".alert.ok")


def _status(page) -> str:  # type: ignore[no-untyped-def]
    return page.inner_text("#ref-status").strip()


def _timeline(page) -> str:  # type: ignore[no-untyped-def]
    return page.inner_text("#timeline")


def test_referral_full_loop_up_and_back_down(live_server, browser, page) -> None:  # type: ignore[no-untyped-def]
    seeded = live_server.seed(_seed)
    base = live_server.url

    # 1. the community doctor refers the child up
    login(page, base, "taoyuan-doc", b.PASSWORD)
    page.goto(f"{base}/referrals/new")
    pick_patient(page, "赵乐乐", "赵乐乐")
    page.select_option("#f-to_institution_id", str(seeded["lead"]))
    page.select_option("#f-priority", "urgent")
    page.fill("#f-reason", "反复发热咳嗽5天，社区抗感染治疗效果不佳")
    page.fill("#f-diagnoses", "J18.9 肺炎")
    page.fill("#f-allergies", "青霉素")
    page.click("#submit-referral")
    page.wait_for_url(f"{base}/referrals/*?done=submit")
    ref_id = int(page.url.split("/referrals/")[1].split("?")[0])
    assert _status(page) == "已提交"
    assert "J18.9" in page.content() and "肺炎" in page.content()
    assert "河西区桃园街社区卫生服务中心" in _timeline(page)

    spec_ctx, spec = _new_page(browser, base, "tjch-specialist")
    try:
        # 2. the specialist finds it on the receiving worklist, receives and accepts it
        spec.goto(f"{base}/referrals?side=receiver&bucket=to_triage")
        spec.click(f"a[href='/referrals/{ref_id}']")
        spec.wait_for_url(f"{base}/referrals/{ref_id}")
        assert "赵乐乐" in spec.inner_text("#patient-name")
        _act(spec, "receive", base, ref_id, "已接收")
        assert _status(spec) == "已接收"
        spec.fill("#accept-reason", "安排呼吸专家门诊")
        _act(spec, "accept", base, ref_id, "已同意接收")
        assert _status(spec) == "已同意"

        # 3. books the expert session for the child through the booking page, then links the booking
        spec.goto(f"{base}/scheduling/sessions/{seeded['session']}")
        pick_patient(spec, "zll", "赵乐乐")
        spec.click("#book-button")
        spec.wait_for_selector("#booking-number")
        number = spec.inner_text("#booking-number").strip()
        assert number
        spec.goto(f"{base}/referrals/{ref_id}")
        options = spec.eval_on_selector_all("#schedule-booking option", "els => els.map(e => e.textContent)")
        assert any(number in o for o in options), options
        spec.select_option("#schedule-booking", index=1)
        _act(spec, "schedule", base, ref_id, "已关联预约")
        assert _status(spec) == "已预约"

        # 4. arrival, outcome, close — the booked session is days ahead, so an arrival today asks for a reason
        if spec.locator("#arrive-reason").count():
            assert "提前登记到诊须填写原因" in spec.inner_text("#form-arrive")
            spec.fill("#arrive-reason", "患儿病情加重，专家同意提前接诊")
        _act(spec, "arrive", base, ref_id, "已登记到诊")
        assert _status(spec) == "已到诊"
        spec.fill("#outcome-text", "社区获得性肺炎，经阿奇霉素治疗好转，可回社区继续康复")
        _act(spec, "outcome", base, ref_id, "已回传诊疗结果")
        assert "阿奇霉素" in spec.inner_text("#outcome-note")
        _act(spec, "close", base, ref_id, "已结案")
        timeline = _timeline(spec)
        for step in ("已接收", "已同意", "已预约", "已到诊", "已结案"):
            assert step in timeline, (step, timeline)

        # 5. refers the child back down with a follow-up plan
        spec.click("#refer-down")
        spec.wait_for_url(f"{base}/referrals/new*")
        assert spec.input_value("#f-direction") == "down"
        spec.fill("#f-reason", "肺炎好转，回社区康复随访")
        spec.fill("#f-diagnoses", "J18.9 肺炎")
        spec.fill("#f-follow_up_plan", "14 复查血常规\n30 复查胸片")
        spec.select_option("#f-linked_referral_id", str(ref_id))
        spec.click("#submit-referral")
        spec.wait_for_url(f"{base}/referrals/*?done=submit")
        down_id = int(spec.url.split("/referrals/")[1].split("?")[0])
        assert down_id != ref_id and _status(spec) == "已提交"
    finally:
        spec_ctx.close()

    # 6. the community doctor sees the closed up-referral with its outcome, then takes the child back
    page.goto(f"{base}/referrals/{ref_id}")
    assert _status(page) == "已结案" and "阿奇霉素" in page.inner_text("#outcome-note")
    page.goto(f"{base}/referrals?side=receiver&bucket=to_triage")
    page.click(f"a[href='/referrals/{down_id}']")
    page.wait_for_url(f"{base}/referrals/{down_id}")
    assert f"/referrals/{ref_id}" in page.content()  # linked to the up-referral
    _act(page, "receive", base, down_id, "已接收")
    _act(page, "accept", base, down_id, "已同意接收")
    tasks = page.inner_text("#tasks")
    assert "复查血常规" in tasks and "复查胸片" in tasks and "待完成" in tasks
    due = (clock.today_local() + timedelta(days=14)).isoformat()
    assert due in tasks, tasks

    # the follow-up tasks are on the community doctor's receiving worklist
    page.goto(f"{base}/referrals?side=receiver&bucket=all")
    listed = page.inner_text("#tasks")
    assert "复查血常规" in listed and "复查胸片" in listed and f"#{down_id}" in listed


def _seed_routing(db):  # type: ignore[no-untyped-def]
    lead = b.institution(db, "天津市儿童医院北辰院区", kind="specialty", level=3, province="天津")
    second = b.institution(db, "北辰区妇幼保健计划生育服务中心", kind="maternal_child", level=2, province="天津")
    comm = b.institution(db, "北辰区果园新村街社区卫生服务中心", kind="community_center", level=1, province="天津")
    alliance = b.alliance(db, (lead, "lead"), (second, "member"), (comm, "member"), name="北辰区儿科医联体")
    coord = b.subject_for(db, b.user(db, lead, "coordinator"))
    dept = b.department(db, lead, "儿童呼吸科")
    schedule = schedules.create_schedule(db, coord, ScheduleIn(
        institution_id=lead.id, kind="clinic", name="儿童呼吸 普通门诊", department_id=dept.id,
        specialty="儿童呼吸", location="门诊楼1层", reserve_alliance_id=alliance.id))
    day = clock.today_local() + timedelta(days=2)
    schedules.add_template(db, coord, schedule.id, TemplateIn(
        weekday=day.isoweekday(), start_time=time(8, 0), end_time=time(11, 0), capacity=10))
    assert schedules.generate_sessions(db, coord, schedule.id, day, day) == 1
    session = sched_repo.upcoming_sessions(db, schedule_id=schedule.id, start=day, days=1)[0][0]
    comm_doc = b.user(db, comm, "doctor", username="guoyuan-doc")
    b.user(db, lead, "doctor", username="beichen-specialist")
    b.patient(db, b.subject_for(db, comm_doc), name="钱多多", resident_id=b.resident_id(region="120113", seq=9))
    return {"session": session.id, "lead": lead.id, "second": second.id, "dept": dept.id}


def test_book_a_reserved_slot_from_inside_the_referral(live_server, browser, page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seeded = live_server.seed(_seed_routing)
    base = live_server.url

    # 1. the community doctor looks for paediatric respiratory care in the alliance and picks the lead
    login(page, base, "guoyuan-doc", b.PASSWORD)
    page.goto(f"{base}/referrals/new")
    pick_patient(page, "qdd", "钱多多")  # by 拼音首字母
    patient_id = page.input_value("#f-patient_id")
    # the routing search fills its part of the form in place: the patient stays chosen
    page.fill("#f-specialty", "儿童呼吸")
    page.click("#routing-button")
    page.wait_for_selector("#routing-candidates")
    assert page.input_value("#f-patient_id") == patient_id
    lead_row = page.locator(f"#candidate-{seeded['lead']}")
    assert lead_row.locator(".free-reserved-slots").inner_text().strip() == "4"  # ceil(10 / 3)
    assert page.locator(f"#candidate-{seeded['second']}").count() == 0  # no such specialty there
    page.click(f"#choose-{seeded['lead']}")
    expect(page.locator("#f-to_institution_id")).to_have_value(str(seeded["lead"]))
    assert page.input_value("#f-to_department_id") == str(seeded["dept"])  # the matching department
    page.fill("#f-reason", "喘息反复发作，需呼吸专科评估")
    page.fill("#f-diagnoses", "J45.9 哮喘")
    page.click("#submit-referral")
    page.wait_for_url(f"{base}/referrals/*?done=submit")
    ref_id = int(page.url.split("/referrals/")[1].split("?")[0])

    # 2. attaches the chest film report (a PDF) to the referral
    report = tmp_path / "胸片报告.pdf"
    report.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    page.set_input_files("#attachment-file", str(report))
    page.click("#attach-button")
    page.wait_for_url(f"{base}/referrals/{ref_id}?done=attach")
    assert "胸片报告.pdf" in page.inner_text("#attachment-list")

    spec_ctx, spec = _new_page(browser, base, "beichen-specialist")
    try:
        # 3. the specialist reads the attachment while triaging, accepts, and books from inside the referral
        spec.goto(f"{base}/referrals/{ref_id}")
        href = spec.get_attribute("#attachment-list a", "href")
        got = spec.request.get(f"{base}{href}")
        assert got.status == 200 and got.body().startswith(b"%PDF")
        _act(spec, "receive", base, ref_id, "已接收")
        _act(spec, "accept", base, ref_id, "已同意接收")
        row = spec.locator(f"#slot-option-{seeded['session']}")
        assert row.locator(".free-reserved").inner_text().strip() == "4"
        spec.click(f"#book-slot-{seeded['session']} button[type=submit]")
        spec.wait_for_url(f"{base}/referrals/{ref_id}?done=book-slot")
        assert _status(spec) == "已预约"
        assert "已为转诊预约号源" in spec.inner_text(".alert.ok")
        assert spec.locator("#routing-book").count() == 0  # nothing more to book
        assert "已预约" in _timeline(spec)
    finally:
        spec_ctx.close()

    # 4. the referring doctor sees the booking, and one reserved slot fewer in the alliance
    page.goto(f"{base}/referrals/{ref_id}")
    assert _status(page) == "已预约" and "/bookings/" in page.content()
    page.goto(f"{base}/referrals/new?patient_id={patient_id}&specialty=儿童呼吸")
    assert page.locator(f"#candidate-{seeded['lead']} .free-reserved-slots").inner_text().strip() == "3"
