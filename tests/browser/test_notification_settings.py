"""通知设置 in the browser (issue 22): a village doctor on a 390 px phone opens the settings from the
notifications page, chooses referrals by SMS to her own number, saves, and finds her choice kept; critical
values are ticked and cannot be unticked."""

from __future__ import annotations

from tests import builders as b
from tests.browser.conftest import login


def _seed(db):  # type: ignore[no-untyped-def]
    inst = b.institution(db, "渠口镇卫生院")
    return b.user(db, inst, "doctor").username


def test_a_doctor_chooses_sms_for_referrals_on_her_phone(live_server, page) -> None:  # type: ignore[no-untyped-def]
    username = live_server.seed(_seed)
    base = live_server.url
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, base, username, b.PASSWORD)
    page.goto(f"{base}/notifications")
    page.click("#notification-settings-link")
    page.wait_for_url(f"{base}/notifications/settings")
    critical = page.locator("#pref-critical-sms")
    assert critical.is_checked() and critical.is_disabled()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.check("#pref-referral-sms")
    page.fill("#f-phone", "13900000001")
    page.click("#save-notification-settings")
    page.wait_for_selector("text=通知设置已保存")
    page.goto(f"{base}/notifications/settings")
    assert page.locator("#pref-referral-sms").is_checked()
    assert not page.locator("#pref-booking-sms").is_checked()
    assert page.input_value("#f-phone") == "13900000001"
