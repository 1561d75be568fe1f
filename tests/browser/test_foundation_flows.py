"""A person logs in, opens an alliance page, and registers a patient — in a real browser."""

from __future__ import annotations

from tests import builders as b
from tests.browser.conftest import login


def _seed(db):  # type: ignore[no-untyped-def]
    lead = b.institution(db, "天津市儿童医院", kind="specialty", level=3, province="天津")
    second = b.institution(db, "东丽医院", kind="general", level=2, province="天津")
    comm = b.institution(db, "河西区桃园街社区卫生服务中心", kind="community_center", level=1, province="天津")
    alliance = b.alliance(db, (lead, "lead"), (second, "member"), (comm, "member"), name="天津市儿科医疗联合体")
    b.user(db, comm, "doctor", username="browser-doc")
    return alliance.id


def test_login_open_alliance_page_and_register_patient(live_server, page):  # type: ignore[no-untyped-def]
    alliance_id = live_server.seed(_seed)
    base = live_server.url
    login(page, base, "browser-doc", b.PASSWORD)
    assert "河西区桃园街社区卫生服务中心" in page.inner_text("#acting-institution")

    page.click("text=医联体")
    page.click("text=天津市儿科医疗联合体")
    page.wait_for_url(f"{base}/alliances/{alliance_id}")
    assert "天津市儿童医院" in page.inner_text("#tier-lead")
    assert "东丽医院" in page.inner_text("#tier-secondary")
    assert "河西区桃园街社区卫生服务中心" in page.inner_text("#tier-grassroots")

    # register a child; a wrong check digit is caught first, nothing is stored
    page.goto(f"{base}/patients/new")
    page.fill("#f-name", "李 思 琪")
    page.fill("#f-resident_id", "120103201503080021")
    page.fill("#f-phone", "13912345678")
    page.select_option("#f-consent_alliance_id", str(alliance_id))
    page.click("#register-form button[type=submit]")
    assert "校验位" in page.inner_text("#err-resident_id")
    page.fill("#f-resident_id", b.resident_id(region="120103", male=False, seq=1))
    page.click("#register-form button[type=submit]")
    page.wait_for_selector("#patient-name")
    assert "李思琪" in page.inner_text("#patient-name")
    assert "天津市儿科医疗联合体" in page.inner_text("#consents")

    # English switch
    page.click("text=English")
    assert page.inner_text("header").count("Patients") >= 1
