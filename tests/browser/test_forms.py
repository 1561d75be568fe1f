"""Forms that never lose input (issue 16 item 4), in a real browser.

The up-referral form: the patient is chosen with the type-ahead picker (拼音首字母), a specialty search
and a routing candidate fill their parts of the form in place (no page load, nothing typed lost), the
target's departments follow the institution; a failed submit comes back with every value kept and the
error beside its field; the corrected form goes through.
"""

from __future__ import annotations

import os
from datetime import date

from playwright.sync_api import expect

from tests import builders as b
from tests.browser.conftest import login, pick_patient
from tests.browser.test_referral_loop import _seed_routing
from yilianti.models.alliance import Institution

SHOTS = os.environ.get("YILIANTI_SCREENSHOTS")  # a folder: the pages are saved there to be looked at


def settled(page) -> None:  # type: ignore[no-untyped-def]
    """htmx has swapped and processed what it swapped in (a user is never this quick)."""
    page.locator(".htmx-request, .htmx-settling, .htmx-swapping, .htmx-added").first.wait_for(state="detached")
    page.wait_for_timeout(50)


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def test_a_failed_referral_submit_keeps_every_value(live_server, browser, page) -> None:  # type: ignore[no-untyped-def]
    seeded = live_server.seed(_seed_routing)
    live_server.seed(lambda db: b.department(db, db.get(Institution, seeded["lead"]), "小儿外科"))
    base = live_server.url
    login(page, base, "guoyuan-doc", b.PASSWORD)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"{base}/referrals/new")
    page.fill("#f-reason", "喘息反复发作3周，社区雾化治疗效果不佳")  # typed first: nothing below may wipe it

    # the picker: 拼音首字母 finds the child; age and sex beside the name
    page.fill("#pick-patient_id", "qdd")
    option = page.locator("#pick-results-patient_id .pick-option").first
    option.wait_for()
    assert "钱多多" in option.inner_text() and "岁" in option.inner_text()
    _shot(page, "referral-picker-1366")
    pick_patient(page, "qdd", "钱多多")
    patient_id = page.input_value("#f-patient_id")
    age = (date.today().year - 2015)
    assert f"{age - 1}岁" in page.inner_text("#picked-patient_id") or f"{age}岁" in page.inner_text("#picked-patient_id")

    # specialty search and routing in place
    url = page.url
    page.fill("#f-specialty", "儿童呼吸")
    page.press("#f-specialty", "Enter")  # Enter looks up; it does not submit the form
    page.wait_for_selector("#routing-candidates")
    page.click(f"#choose-{seeded['lead']}")
    expect(page.locator("#f-to_institution_id")).to_have_value(str(seeded["lead"]))
    assert page.input_value("#f-to_department_id") == str(seeded["dept"])
    assert page.url == url and page.input_value("#f-reason").startswith("喘息反复发作")
    assert page.input_value("#f-patient_id") == patient_id
    # institution → departments: the other institution has none of these departments (once the choice's swap has
    # settled: a select htmx has not yet processed sends no request on change)
    settled(page)
    page.select_option("#f-to_institution_id", str(seeded["second"]))
    expect(page.locator("#f-to_department_id option")).to_have_count(1)
    settled(page)
    page.select_option("#f-to_institution_id", str(seeded["lead"]))
    page.wait_for_selector("#f-to_department_id option:has-text('小儿外科')", state="attached")
    page.select_option("#f-to_department_id", str(seeded["dept"]))

    # every other field, with one malformed diagnosis line
    page.select_option("#f-priority", "urgent")
    page.select_option("#f-target_service", "住院")
    page.fill("#f-diagnoses", "哮喘")
    page.fill("#f-key_results", "胸片：双肺纹理增粗")
    page.fill("#f-medications", "布地奈德雾化\n孟鲁司特")
    page.fill("#f-allergies", "头孢类")
    page.uncheck("input[name=permanent]")
    page.click("#submit-referral")
    page.wait_for_selector("#err-diagnoses")

    # every value kept, the error beside its field
    assert page.input_value("#f-patient_id") == patient_id and "钱多多" in page.inner_text("#picked-patient_id")
    assert page.input_value("#f-to_institution_id") == str(seeded["lead"])
    assert page.input_value("#f-to_department_id") == str(seeded["dept"])
    assert page.input_value("#f-priority") == "urgent" and page.input_value("#f-target_service") == "住院"
    assert page.input_value("#f-reason") == "喘息反复发作3周，社区雾化治疗效果不佳"
    assert page.input_value("#f-diagnoses") == "哮喘" and page.input_value("#f-key_results") == "胸片：双肺纹理增粗"
    assert page.input_value("#f-medications") == "布地奈德雾化\n孟鲁司特" and page.input_value("#f-allergies") == "头孢类"
    assert page.input_value("#f-specialty") == "儿童呼吸" and page.locator("#routing-candidates").count() == 1
    assert not page.is_checked("input[name=permanent]")
    beside = page.locator("#f-diagnoses").locator("xpath=..")
    assert "ICD-10" in beside.locator(".field-error").inner_text()
    _shot(page, "referral-failed-submit-1366")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    _shot(page, "referral-failed-submit-390")
    page.set_viewport_size({"width": 1366, "height": 900})

    page.fill("#f-diagnoses", "J45.9 哮喘")
    page.click("#submit-referral")
    page.wait_for_url(f"{base}/referrals/*?done=submit")
    content = page.content()
    assert "J45.9" in content and "布地奈德雾化" in content and "头孢类" in content


def _seed_recognition(db):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from tests.recognition.helpers import days_ago, price, thyroid, world
    from yilianti.models.diagnostics import DiagnosticItem

    w = world(db)
    result_id = thyroid(db, w, days_ago(3))
    price(db, w.beijing, "LAB-TFT", 12000)
    price(db, w.beijing, "LAB-GLU", 1000)
    items = {i.code: i.id for i in db.scalars(select(DiagnosticItem).where(
        DiagnosticItem.reading_centre_institution_id == w.beijing.id))}
    return {"user": w.bj_doctor.username, "result": result_id, "tft": items["LAB-TFT"], "glu": items["LAB-GLU"]}


def test_the_new_order_form_offers_recognised_results_inline(live_server, browser, page) -> None:  # type: ignore[no-untyped-def]
    seeded = live_server.seed(_seed_recognition)
    base = live_server.url
    login(page, base, seeded["user"], b.PASSWORD)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"{base}/diagnostics/orders/new")
    page.check(f"#item-{seeded['glu']}")
    page.check(f"#item-{seeded['tft']}")
    pick_patient(page, "lxl", "李秀兰")  # choosing the patient checks the items already ticked
    check = page.locator(f"#check-{seeded['tft']}")
    expect(check.locator(".hr-mark")).to_have_text("HR 京津冀")
    assert "测试香河县人民医院" in check.inner_text() and "TSH 2.1" in check.inner_text()
    expect(page.locator(f"#check-{seeded['glu']}")).to_contain_text("不在互认目录")
    page.fill("#f-clinical_question", "甲亢复查")
    page.click("#submit-order")  # no choice yet: asked beside the item, nothing placed, nothing lost
    page.wait_for_selector(f"#err-choice_{seeded['tft']}")
    assert page.is_checked(f"#item-{seeded['glu']}") and page.input_value("#f-clinical_question") == "甲亢复查"
    _shot(page, "order-recognition-1366")
    page.set_viewport_size({"width": 390, "height": 844})
    _shot(page, "order-recognition-390")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.check(f"#reuse-{seeded['tft']}-{seeded['result']}")
    page.click("#submit-order")
    page.wait_for_url(f"{base}/diagnostics/orders?placed=1&reused=1")
    assert "1项采用互认结果" in page.inner_text(".alert.ok")
