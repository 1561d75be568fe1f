"""The shared record a clinician can use (issue 16 item 7), in a real browser: the township doctor opens the
children's hospital's signed report from the record, then the white-cell count over time (table and chart)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests import builders as b
from tests.browser.conftest import login
from tests.browser.test_forms import _shot
from tests.record.test_open_from_record import _more_wbc
from tests.record.test_record import _setup
from yilianti.patients import service as patients
from yilianti.patients.schemas import ConsentIn


def _seed(db):  # type: ignore[no-untyped-def]
    w, p = _setup(db)
    _more_wbc(db, w, p)
    patients.grant_consent(db, w.d_town, p.id, ConsentIn(scope="alliance", alliance_id=w.alliance.id))
    b.user(db, w.township, "doctor", username="qk-town-doc")
    return {"patient": p.id}


def test_open_another_members_report_and_a_lab_trend(live_server, browser, page) -> None:  # type: ignore[no-untyped-def]
    seeded = live_server.seed(_seed)
    base = live_server.url
    login(page, base, "qk-town-doc", b.PASSWORD)
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{base}/patients/{seeded['patient']}/record")
        page.click("a.open-report")
        expect(page.locator("#report-conclusion")).to_have_text("两肺纹理增粗")
        expect(page.locator("#access-basis")).to_have_text("共享授权")
        _shot(page, f"record-report-{width}")
        page.goto(f"{base}/patients/{seeded['patient']}/record")
        page.locator("a.trend-link").first.click()
        expect(page.locator("#trend-chart circle")).to_have_count(3)
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
        _shot(page, f"record-trend-{width}")
