"""The list kit in the browser (issue 16 item 3) on the lists it came to last: the patients, the wait-list, the
reading worklist, the identity-review queue and the audit log — typed into, filtered, paged and exported as a user
does, at a desktop width and (the grassroots pages) at a village doctor's 390 px. Screenshots with
YILIANTI_SCREENSHOTS=dir."""

from __future__ import annotations

import os
from io import BytesIO

from tests.browser.conftest import login
from yilianti.demo import dataset, loader


def _seed(db):  # type: ignore[no-untyped-def]
    dataset.load_demo(db)
    return loader.DEMO_PASSWORD


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    where = os.environ.get("YILIANTI_SCREENSHOTS")
    if where:
        page.screenshot(path=os.path.join(where, f"lists-{name}.png"), full_page=True)


def _total(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.locator("#pager").get_attribute("data-total") or 0)


def _filter(page, base: str, **fields: str) -> None:  # type: ignore[no-untyped-def]
    for selector, value in fields.items():
        target = page.locator(f"#{selector}")
        if target.evaluate("e => e.tagName") == "SELECT":
            target.select_option(value)
        else:
            target.fill(value)
    with page.expect_navigation():
        page.locator("#list-filters button[type=submit]").click()


def _export_rows(page) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    from openpyxl import load_workbook

    with page.expect_download() as info:
        page.click("#export-xlsx")
    path = info.value.path()
    with open(path, "rb") as f:
        sheet = load_workbook(BytesIO(f.read()), read_only=True).worksheets[0]
    return [tuple(r) for r in sheet.iter_rows(values_only=True)]


def _no_sideways_scroll(page, path: str) -> None:  # type: ignore[no-untyped-def]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{path} scrolls sideways: {width} px"


def test_lists_filter_page_and_export_in_the_browser(live_server, page) -> None:  # type: ignore[no-untyped-def]
    password = live_server.seed(_seed)
    base = live_server.url

    # the grassroots doctor's patients: desktop, then the phone
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, base, "tj-community-doctor", password)
    page.goto(f"{base}/patients?per_page=10")
    everyone = _total(page)
    assert everyone > 10 and page.locator("#patients tbody tr").count() == 10 and page.locator("#page-next").count()
    name = page.locator("#patients tbody tr a").first.inner_text()
    _filter(page, base, **{"f-q": name, "f-status": "here"})
    assert "q=" in page.url and "status=here" in page.url
    found = _total(page)
    assert 1 <= found < everyone and page.locator("#f-q").input_value() == name  # the filter stays typed
    rows = _export_rows(page)
    assert rows[0][0] == "姓名" and len(rows) - 1 == found
    _shot(page, "patients-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/patients", "/scheduling/waitlist", "/scheduling/waitlist?tab=outgoing"):
        page.goto(base + path)
        _no_sideways_scroll(page, path)
        _shot(page, "phone" + path.replace("/", "-").replace("?", "_"))
    page.context.clear_cookies()

    # the lead's wait-list (the demo's request to 首都儿科研究所), by status
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, base, "chaoyang-lead-coordinator", password)
    page.goto(f"{base}/scheduling/waitlist")
    assert _total(page) >= 1
    _filter(page, base, **{"f-status": "waiting", "f-q": "腹痛"})
    assert _total(page) == 1 and page.locator("td.wait-status").first.inner_text() == "待安排"
    _shot(page, "waitlist-desktop")
    page.context.clear_cookies()

    # the reader's worklist
    login(page, base, "xianghe-reader", password)
    page.goto(f"{base}/diagnostics/worklist")
    waiting = _total(page)
    assert waiting >= 1
    _filter(page, base, **{"f-status": "received"})
    received = _total(page)
    assert received <= waiting
    rows = _export_rows(page)
    assert len(rows) - 1 == received and {r[6] for r in rows[1:]} <= {"待阅片"}
    _shot(page, "worklist-desktop")
    page.context.clear_cookies()

    # the identity-review queue and the audit log
    login(page, base, "admin", password)
    page.goto(f"{base}/empi/review")
    pairs = _total(page)
    assert pairs >= 1
    _shot(page, "empi-review-desktop")
    page.goto(f"{base}/audit?per_page=20")
    assert _total(page) > 20 and page.locator("#page-next").count()
    page.click("#page-next")
    assert "page=2" in page.url and page.locator("#page-prev").count()
    _filter(page, base, **{"f-action": "read"})
    assert "action=read" in page.url and "page=" not in page.url
    _shot(page, "audit-desktop")
