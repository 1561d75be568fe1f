"""The lead-hospital doctor's morning on the demo, in a real browser: the workbench shows the referrals waiting,
the count opens the referral list on exactly those rows (the received tab, highlighted, every tab counted), one is
opened, received and accepted, and the count goes down; from the next count it is booked, the patient arrives, the
outcome goes back and the referral is closed. Screenshots at 1366 px and 390 px
(YILIANTI_SCREENSHOTS, a directory, keeps them); at 390 px the page does not scroll sideways."""

from __future__ import annotations

import os

from tests.browser.conftest import login
from tests.browser.test_referral_loop import _act
from yilianti.demo import dataset, loader


def _seed(db):  # type: ignore[no-untyped-def]
    dataset.load_demo(db)
    return next(a.password for a in loader.demo_accounts() if a.username == "tj-lead-doctor")


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    where = os.environ.get("YILIANTI_SCREENSHOTS")
    if where:
        page.screenshot(path=os.path.join(where, f"workbench-{name}.png"), full_page=True)


def _count(page, key: str) -> int:  # type: ignore[no-untyped-def]
    return int(page.get_attribute(f"#wb-{key}", "data-count") or -1)


def test_lead_doctor_works_a_waiting_referral_from_the_workbench(live_server, page) -> None:  # type: ignore[no-untyped-def]
    password = live_server.seed(_seed)
    base = live_server.url
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, base, "tj-lead-doctor", password)
    waiting = _count(page, "referral-to_triage")
    assert waiting >= 1
    assert "待接收/待决定的转诊" in page.inner_text("#workbench")
    _shot(page, "lead-doctor-1366")

    # the count opens the list of exactly those referrals, on the received tab, highlighted
    page.click("#wb-referral-to_triage")
    page.wait_for_url(f"{base}/referrals?side=receiver&bucket=to_triage")
    assert "current" in (page.get_attribute("#side-receiver", "class") or "")
    assert "current" in (page.get_attribute("#bucket-to_triage", "class") or "")
    assert page.locator("#referrals tbody tr").count() == waiting
    assert page.inner_text("#count-to_triage").strip() == str(waiting)
    _shot(page, "referrals-1366")

    # open the first, receive it and decide: accepted
    page.locator("#referrals tbody tr a").first.click()
    page.wait_for_selector("#ref-status")
    ref_url = page.url
    ref_id = int(ref_url.split("/referrals/")[1].split("?")[0])
    if page.inner_text("#ref-status").strip() == "已提交":
        _act(page, "receive", base, ref_id, "已接收")
    assert page.inner_text("#ref-status").strip() == "已接收"
    page.fill("#accept-reason", "安排专家门诊")
    _act(page, "accept", base, ref_id, "已同意接收")
    assert page.inner_text("#ref-status").strip() == "已同意"

    # back on the workbench: one fewer to decide, one more to schedule
    page.goto(f"{base}/")
    assert _count(page, "referral-to_triage") == waiting - 1
    to_book = _count(page, "referral-awaiting_booking")
    assert to_book >= 1

    # the schedule count opens the list with the accepted referral; it is booked from inside the referral
    page.click("#wb-referral-awaiting_booking")
    page.wait_for_url(f"{base}/referrals?side=receiver&bucket=awaiting_booking")
    page.click(f"#referrals a[href^='/referrals/{ref_id}']")
    page.wait_for_url(f"{base}/referrals/{ref_id}")
    page.locator("[id^=book-slot-] button[type=submit]").first.click()
    page.wait_for_url(f"{base}/referrals/{ref_id}?done=book-slot")
    assert page.inner_text("#ref-status").strip() == "已预约"

    # the patient comes (before the booked day: with the reason), is treated, the outcome goes back, closed
    if page.locator("#arrive-reason").count():
        page.fill("#arrive-reason", "病情加重，专家同意提前接诊")
    _act(page, "arrive", base, ref_id, "已登记到诊")
    assert page.inner_text("#ref-status").strip() == "已到诊"
    page.fill("#outcome-text", "诊断明确，已调整治疗方案，建议回基层随访")
    _act(page, "outcome", base, ref_id, "已回传诊疗结果")
    assert "建议回基层随访" in page.inner_text("#outcome-note")
    _act(page, "close", base, ref_id, "已结案")
    timeline = page.inner_text("#timeline")
    for step in ("已接收", "已同意", "已预约", "已到诊", "已结案"):
        assert step in timeline, (step, timeline)
    page.goto(f"{base}/")
    assert _count(page, "referral-awaiting_booking") == to_book - 1

    # the phone width: the workbench and the list fit without sideways scrolling
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/")
    _shot(page, "lead-doctor-390")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    page.goto(f"{base}/referrals")
    _shot(page, "referrals-390")
