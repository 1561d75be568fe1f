"""Chronic care in a real browser, at a village doctor's phone width (390 px) and on a desktop: the team's page
(add a member, terminate a contract), the registry (enrol a TB patient through the picker), a screening round
(record a raised reading, the suggestion awaits the doctor, who enrols) and the signing rates. No page scrolls
sideways on the phone. Screenshots with YILIANTI_SCREENSHOTS=dir."""

from __future__ import annotations

import os
from datetime import date

from tests import builders as b
from tests.browser.conftest import login, pick_patient
from yilianti.chronic import service


def _seed(db):  # type: ignore[no-untyped-def]
    centre = b.institution(db, "沙县区总医院高桥分院", kind="township", level=1, province="福建")
    lead = b.institution(db, "沙县区总医院", level=2, province="福建")
    b.alliance(db, (lead, "lead"), (centre, "member"), name="沙县区总医院紧密型县域医共体", model="county_community")
    doctor = b.user(db, centre, "doctor", username="gq-doc")
    b.user(db, centre, "nurse", username="gq-nurse")
    b.user(db, lead, "doctor", username="sx-endo")
    db.flush()
    sub = b.subject_for(db, doctor)
    people = {}
    for i, (name, birth, village) in enumerate([("王辉煌", date(1961, 3, 15), "上坪村"), ("李秀英", date(1950, 8, 9), "高桥村"),
                                                ("陈美华", date(1958, 2, 3), "高桥村"), ("张建国", date(1970, 1, 4), "新桥村")]):
        people[name] = b.patient(db, sub, name, birth=birth, resident_id=b.resident_id(birth, "350427", seq=21 + 2 * i),
                                 address=f"福建省三明市沙县区高桥镇{village}{i + 5}号")
    team = service.create_team(db, sub, "高桥家庭医生一队", "高桥村、上坪村、新桥村", [(doctor.id, "gp")])
    for name in ("王辉煌", "李秀英"):
        service.sign_contract(db, sub, team.id, people[name].id, "basic")
    service.enrol(db, sub, people["李秀英"].id, "hypertension", team_id=team.id)
    return team.id


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    where = os.environ.get("YILIANTI_SCREENSHOTS")
    if where:
        page.screenshot(path=os.path.join(where, f"chronic-{name}.png"), full_page=True)


def _fits(page, width: int, where: str) -> None:  # type: ignore[no-untyped-def]
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{where} scrolls sideways: {scroll} px"


def test_chronic_care_on_a_phone_and_a_desktop(live_server, page) -> None:  # type: ignore[no-untyped-def]
    team_id = live_server.seed(_seed)
    base = live_server.url
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, base, "gq-doc", b.PASSWORD)

    # the team: add the lead hospital's endocrinologist as the team's specialist and lead
    page.goto(f"{base}/chronic/teams/{team_id}")
    _fits(page, 390, "team")
    page.click("#add-member summary")
    page.select_option("#f-user_id", label=page.locator("#f-user_id option", has_text="sx-endo").inner_text())
    page.select_option("#f-role", "specialist")
    page.check("input[name=lead]")
    page.click("#add-member button[type=submit]")
    page.wait_for_url(f"{base}/chronic/teams/{team_id}?done=member_added#members")
    assert page.locator("#members-table .tag.lead").count() == 1
    assert "牵头医院专科医生" in page.locator("#members-table").inner_text()
    # terminate 王辉煌's contract: without a note, "other" is refused and the form comes back open
    row = page.locator("#contracts-table tr", has_text="王辉煌")
    row.locator("summary").click()
    row.locator("select[name=reason]").select_option("other")
    row.locator("button[type=submit]").click()
    assert "请说明解约原因" in page.locator("#contract-error").inner_text()
    row = page.locator("#contracts-table tr", has_text="王辉煌")
    row.locator("select[name=reason]").select_option("moved")
    row.locator("button[type=submit]").click()
    page.wait_for_url(f"{base}/chronic/teams/{team_id}?done=contract_terminated#contracts")
    assert "已解约" in page.locator("#contracts-table tr", has_text="王辉煌").inner_text()
    _fits(page, 390, "team after termination")
    _shot(page, "team-phone")

    # the registry: 张建国's tuberculosis, notified yesterday
    page.goto(f"{base}/chronic/registry")
    page.click("#enrol summary")
    pick_patient(page, "张建国", "张建国")
    page.select_option("#f-condition", "tb")
    page.fill("#f-icd10", "A15.0")
    page.click("#enrol-form button[type=submit]")
    page.wait_for_url(f"{base}/chronic/registrations/**")
    assert "强化期" in page.locator("#registration-facts").inner_text()
    _fits(page, 390, "registration")
    _shot(page, "registration-phone")
    page.goto(f"{base}/chronic/registry")
    assert page.locator("#registry-table tbody tr").count() == 2
    _fits(page, 390, "registry")
    _shot(page, "registry-phone")

    # a BP round in 高桥村: 陈美华 at 152/96 becomes a suggestion; the doctor enrols her
    page.goto(f"{base}/chronic/screening")
    page.click("#new-round summary")
    page.fill("#f-village", "高桥村")
    page.click("#new-round button[type=submit]")
    page.wait_for_url(f"{base}/chronic/screening/*")
    pick_patient(page, "陈美华", "陈美华")
    page.fill("#f-sbp", "152")
    page.fill("#f-dbp", "96")
    page.click("#reading-form button[type=submit]")
    page.wait_for_selector("#records-table .finding-raised")
    _fits(page, 390, "screening round")
    _shot(page, "screening-round-phone")
    page.goto(f"{base}/chronic/screening")
    assert page.locator("#pending-count").inner_text() == "1"
    _shot(page, "screening-phone")
    page.locator("#pending-table tr", has_text="陈美华").locator("button", has_text="纳入管理").click()
    page.wait_for_url(f"{base}/chronic/screening?done=decided_enrol#pending")
    assert page.locator("#pending-count").inner_text() == "0"
    page.goto(f"{base}/chronic/screening/coverage")
    _fits(page, 390, "coverage")
    _shot(page, "coverage-phone")

    page.goto(f"{base}/chronic/signing")
    _fits(page, 390, "signing")
    _shot(page, "signing-phone")
    # the chronic tabs are one row on the phone, scrolled so the current tab (the last) shows
    tabs = page.locator("#chronic-tabs")
    one = page.locator("#chronic-tabs a").first.bounding_box()
    box = tabs.bounding_box()
    assert one and box and box["height"] < 2 * one["height"], f"the tabs wrap: {box}"
    current = page.locator("#chronic-tabs a.current").bounding_box()
    assert current and box["x"] <= current["x"] and current["x"] + current["width"] <= box["x"] + box["width"] + 1
    page.goto(f"{base}/chronic/overdue?due=today")
    _fits(page, 390, "overdue")
    _shot(page, "overdue-phone")
    # on a desktop the signing rates are a table: 李秀英 is the team's one contract in force of 4 residents
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"{base}/chronic/signing")
    total = page.locator("#rates-total td[data-population=all]")
    assert (total.get_attribute("data-signed"), total.get_attribute("data-residents")) == ("1", "4")
    _shot(page, "signing-desktop")
    page.goto(f"{base}/chronic/teams/{team_id}")
    _shot(page, "team-desktop")
