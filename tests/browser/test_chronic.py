"""Chronic care in a real browser, at a desk (1366 px) and on a village doctor's phone (390 px): the national
follow-up form (a mistake comes back with everything typed, the corrected visit shows the next date), the
overdue list with a phone call logged, an urgent visit's alarm acknowledged into a prefilled urgent
up-referral, and the outcome table. Screenshots with YILIANTI_SCREENSHOTS=dir."""

from __future__ import annotations

import os
from datetime import timedelta

from tests import builders as b
from tests.browser.conftest import login
from yilianti.chronic import reminders, service
from yilianti.kit import clock

SHOTS = os.environ.get("YILIANTI_SCREENSHOTS")


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def _seed(db):  # type: ignore[no-untyped-def]
    centre = b.institution(db, "沙县区总医院高桥分院", kind="community", level=1)
    doctor = b.user(db, centre, "doctor", username="gq-browser-doc")
    db.flush()
    sub = b.subject_for(db, doctor)
    today = clock.today_local()
    wang = b.patient(db, sub, "王辉煌", phone="13905981234")
    li = b.patient(db, sub, "李秀英", phone="13905985678")
    team = service.create_team(db, sub, "高桥家庭医生一队", "高桥村", [(doctor.id, "gp")])
    dm = service.enrol(db, sub, wang.id, "diabetes_t2", team_id=team.id, enrolled_on=today - timedelta(days=30))
    htn = service.enrol(db, sub, li.id, "hypertension", team_id=team.id, enrolled_on=today - timedelta(days=40))
    reminders.queue_due(db)
    from yilianti.chronic import repository
    return {"dm": repository.open_follow_up(db, dm.id).id, "htn": repository.open_follow_up(db, htn.id).id}


def test_follow_up_overdue_alarm_and_outcomes_at_desk_and_phone(live_server, page) -> None:  # type: ignore[no-untyped-def]
    ids = live_server.seed(_seed)
    base = live_server.url
    login(page, base, "gq-browser-doc", b.PASSWORD)
    today = clock.today_local().isoformat()
    for width, tag in ((1366, "desk"), (390, "phone")):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{base}/chronic/overdue")
        assert page.locator("#overdue-table tbody tr.overdue").count() == (2 if tag == "desk" else 1)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        _shot(page, f"chronic-overdue-{tag}")
        if tag == "desk":
            # the diabetic patient's visit: a typo comes back with everything kept, then goes through
            page.goto(f"{base}/chronic/follow-ups/{ids['dm']}")
            page.fill("#f-done_on", today)
            page.select_option("#f-visit_mode", "home")
            page.check("input[name=symptoms][value=polydipsia]")
            page.fill("#f-sbp", "1500")
            page.fill("#f-dbp", "90")
            page.fill("#f-fasting_glucose", "17.5")
            page.fill("#f-medications", "二甲双胍 0.5g tid")
            page.click("#follow-up-form button[type=submit]")
            assert page.locator("#err-sbp").inner_text() == "应在 50–300 mmHg 之间"
            assert page.input_value("#f-fasting_glucose") == "17.5"
            assert page.is_checked("input[name=symptoms][value=polydipsia]")
            assert page.input_value("#f-medications") == "二甲双胍 0.5g tid"
            _shot(page, "chronic-visit-error-desk")
            page.fill("#f-sbp", "150")
            page.click("#follow-up-form button[type=submit]")
            page.wait_for_selector("#next-due")
            assert page.locator("#last-action").inner_text() == "紧急转诊"
            _shot(page, "chronic-visit-recorded-desk")
            # the alarm: acknowledged into the prefilled urgent up-referral
            page.click("#suggest-referral")
            page.wait_for_url(f"{base}/referrals/new*")
            assert "血糖 17.5 mmol/L" in page.input_value("#f-reason")
            assert page.input_value("#f-priority") == "urgent"
            _shot(page, "chronic-referral-prefilled-desk")
    # on the phone: the hypertension patient's call and visit form
    page.goto(f"{base}/chronic/follow-ups/{ids['htn']}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.select_option("#f-outcome", "no_answer")
    page.fill("#f-call_note", "上午未接")
    page.click("#call-form button[type=submit]")
    page.wait_for_selector("#calls-table:has-text('无人接听')")
    _shot(page, "chronic-visit-phone")
    for path, name in (("/chronic/alarms?status=open", "alarms"), ("/chronic/reminders", "reminders"),
                       ("/chronic/readings", "readings"),
                       ("/chronic/outcomes", "outcomes"), ("/chronic/outcomes/monthly", "monthly"),
                       ("/chronic/outcomes/monthly?by=village", "monthly-village")):
        page.goto(base + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        _shot(page, f"chronic-{name}-phone")
    # the monthly charts are drawn (echarts from /static, no CDN) at the phone's width
    page.goto(f"{base}/chronic/outcomes/monthly")
    page.wait_for_selector("#rate-chart canvas")
    assert page.locator("#kind-chart canvas").count() == 1
    assert (page.locator("#rate-chart").bounding_box() or {"width": 999})["width"] <= 390
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"{base}/chronic/alarms?status=open")
    assert page.locator("#alarms-table tbody tr.alarm-open").count() == 1
    _shot(page, "chronic-alarms-desk")
    page.goto(f"{base}/chronic/outcomes")
    _shot(page, "chronic-outcomes-desk")
