"""The auditor filters the audit log without typing internal numbers (issue 16): the institution is chosen by name
from those the auditor's alliance covers, the patient by name through the audit log's own picker (scoped to the
patients its events name, audited as a search from the audit log); the rows are then that patient's events at that
institution, with names and local times in their details. Screenshots with YILIANTI_SCREENSHOTS=dir."""

from __future__ import annotations

import os
import re

from sqlalchemy import select

from tests.browser.conftest import login
from yilianti.demo import dataset, loader
from yilianti.models.audit import AuditEvent


def _seed(db):  # type: ignore[no-untyped-def]
    dataset.load_demo(db)
    return loader.DEMO_PASSWORD


def test_auditor_filters_by_institution_and_patient_names(live_server, page) -> None:  # type: ignore[no-untyped-def]
    password = live_server.seed(_seed)
    base = live_server.url
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, base, "tj-auditor", password)
    page.goto(f"{base}/audit")
    # no number boxes: the institution is a list of names, the patient a type-ahead
    assert page.locator("input[name=institution_id]").count() == 0
    options = page.locator("#f-institution option").all_inner_texts()
    assert "天津市儿童医院" in options and not any(o.strip().isdigit() for o in options)
    # a patient the log names at the lead hospital (a link in the 患者 column, shown by name)
    row = page.locator("#audit-events tbody tr", has=page.locator("td[data-patient]:not([data-patient='']) a")).filter(
        has_text="天津市儿童医院").first
    name = row.locator("td[data-patient] a").inner_text()
    pid = row.locator("td[data-patient]").get_attribute("data-patient")
    assert re.fullmatch(r"[\u4e00-\u9fff]{2,4}", name), name
    page.locator("#f-institution").select_option(label="天津市儿童医院")
    page.fill("#pick-patient_id", name)
    page.click(f"#pick-results-patient_id .pick-option[data-patient='{pid}']")
    page.wait_for_selector(f"#picked-patient_id:has-text('{name}')")
    with page.expect_navigation():
        page.locator("#list-filters button[type=submit]").click()
    iid = page.locator("#f-institution").input_value()
    assert f"patient_id={pid}" in page.url and f"institution_id={iid}" in page.url
    rows = page.locator("#audit-events tbody tr")
    assert rows.count() >= 1
    assert set(page.locator("#audit-events td[data-patient]").evaluate_all("els => els.map(e => e.dataset.patient)")) == {pid}
    assert set(page.locator("#audit-events td[data-institution]").evaluate_all(
        "els => els.map(e => e.dataset.institution)")) == {iid}
    assert page.locator("#picked-patient_id").inner_text().startswith(name)  # the filter stays chosen, by name
    where = os.environ.get("YILIANTI_SCREENSHOTS")
    if where:
        page.screenshot(path=os.path.join(where, "audit-filtered.png"), full_page=True)
    # details name things: no bare institution ids, no ISO timestamps
    page.goto(f"{base}/audit?action=grant")
    details = " ".join(page.locator("#audit-events ul.changes").all_inner_texts())
    assert "到期时间" in details and not re.search(r"\d{4}-\d\d-\d\dT\d\d:", details)
    assert not re.search(r"机构: \d+\b", details)
    # a name the auditor's scope never saw finds no one; the picker's searches are in the log as the auditor's
    page.goto(f"{base}/audit")
    page.fill("#pick-patient_id", "不存在的人")
    page.wait_for_selector("#pick-results-patient_id .pick-none")
    with live_server.factory() as db:
        searches = db.scalars(select(AuditEvent).where(AuditEvent.username == "tj-auditor",
                                                       AuditEvent.resource_type == "patient")).all()
    assert any((e.detail or {}).get("view") == "audit" and int(pid) in (e.detail or {}).get("results", [])
               for e in searches)
    # at a phone's width the filter bar still fits
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/audit?patient_id={pid}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
