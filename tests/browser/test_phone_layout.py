"""The grassroots doctor's pages at a village doctor's phone width (390 px): the menu folds behind ☰ and opens
with it, and no page scrolls sideways (list tables become cards). Screenshots with YILIANTI_SCREENSHOTS=dir."""

from __future__ import annotations

import os
import re

from tests.browser.conftest import login
from yilianti.demo import dataset, loader

PAGES = ["/", "/patients", "/patients?q=王", "/scheduling", "/referrals", "/referrals?box=in", "/diagnostics/orders",
         "/diagnostics/critical", "/notifications"]


def _seed(db):  # type: ignore[no-untyped-def]
    dataset.load_demo(db)
    return loader.DEMO_PASSWORD


def test_township_doctor_works_at_390_px(live_server, page) -> None:  # type: ignore[no-untyped-def]
    password = live_server.seed(_seed)
    base = live_server.url
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, base, "tj-community-doctor", password)
    nav = page.locator("#main-nav")
    toggle = page.locator("#menu-toggle")
    assert toggle.is_visible() and not nav.is_visible()  # folded
    toggle.click()
    assert nav.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    nav.get_by_text("双向转诊").click()
    page.wait_for_url(f"{base}/referrals*")
    assert not page.locator("#main-nav").is_visible()  # a new page starts folded
    for path in PAGES:
        page.goto(base + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways: {width} px"
        where = os.environ.get("YILIANTI_SCREENSHOTS")
        if where:
            page.screenshot(path=os.path.join(where, f"phone{path.replace('/', '-').replace('?', '_')}.png"),
                            full_page=True)
    # a patient is a card of at most four lines (name · sex · age · birth / ID · phone / address / registered at),
    # every value still there
    page.goto(f"{base}/patients")
    card = page.locator("#patients tbody tr").first
    line = float(page.evaluate("parseFloat(getComputedStyle(document.querySelector('#patients tbody td.c-addr')).lineHeight)"))
    box = card.bounding_box()
    assert box is not None and box["height"] <= 4 * line + 16, f"{box} for lines of {line} px"
    texts = [t.strip() for t in card.locator("td").all_inner_texts()]
    assert all(texts[:4]) and re.fullmatch(r"\d{6}\*+\w{4}", texts[4]) and texts[7], texts
    # a list is a stack of cards, each cell carrying its column's name
    page.goto(f"{base}/diagnostics/orders")
    cell = page.locator("main table.list-table td[data-label]").first
    assert cell.get_attribute("data-label")
    # a list's "nothing here" line spans the row and names no column; a section's links flow on one or two lines
    page.goto(f"{base}/diagnostics/critical")
    assert page.locator("#critical-values td[colspan]").get_attribute("data-label") == ""
    assert page.locator("#dx-nav").bounding_box()["height"] < 80  # type: ignore[index]
    # at 1366 px the menu is the usual top bar
    page.set_viewport_size({"width": 1366, "height": 900})
    assert page.locator("#main-nav").is_visible() and not page.locator("#menu-toggle").is_visible()
