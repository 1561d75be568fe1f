"""The identity review queue in a real browser, on the demo's three review pairs: `admin` opens the queue
(likeliest first, the count per member), opens the first pair, presses N (not a match) and lands on the next
pair in the same order; M asks before it merges. Screenshots at 1366 px and 390 px (YILIANTI_SCREENSHOTS, a
directory, keeps them)."""

from __future__ import annotations

import os
import re

from sqlalchemy import select

from tests.browser.conftest import login
from yilianti.demo import dataset, loader
from yilianti.models.empi import MatchCandidate


def _seed(db):  # type: ignore[no-untyped-def]
    dataset.load_demo(db)  # the whole demo: its review pairs are scored against the whole index
    ids = list(db.scalars(select(MatchCandidate.id).where(MatchCandidate.status == "open")
                          .order_by(MatchCandidate.score.desc(), MatchCandidate.id)))
    password = next(a.password for a in loader.demo_accounts() if a.username == "admin")
    return {"ids": ids, "password": password}


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    where = os.environ.get("YILIANTI_SCREENSHOTS")
    if where:
        page.screenshot(path=os.path.join(where, f"empi-review-{name}.png"), full_page=True)


def test_admin_works_the_queue_with_the_keyboard(live_server, page) -> None:  # type: ignore[no-untyped-def]
    s = live_server.seed(_seed)
    ids = s["ids"]
    assert len(ids) >= 3, "the demo queues three review pairs"
    base = live_server.url
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, base, "admin", s["password"])
    page.goto(f"{base}/empi/review")
    rows = page.locator("#candidates tbody tr")
    assert rows.count() == len(ids)
    assert rows.first.get_attribute("id") == f"candidate-{ids[0]}"  # likeliest first
    assert re.search(r"\d+\.\d%", rows.first.inner_text())
    assert page.locator("#waiting .chip").count() >= 3  # all members + one per member with pairs waiting
    _shot(page, "list-1280")
    page.click(f"#candidate-{ids[0]} a")
    page.wait_for_url(f"{base}/empi/review/{ids[0]}")
    assert page.locator("#side-by-side mark").count() > 0  # differing characters marked
    assert page.locator("#confirm-form button kbd").inner_text() == "M"
    _shot(page, "detail-1280")
    # M asks first: dismissing the dialog keeps the pair open
    page.once("dialog", lambda d: d.dismiss())
    page.keyboard.press("m")
    page.wait_for_timeout(300)
    assert page.url.endswith(f"/empi/review/{ids[0]}")
    # typing in a note does not trigger a shortcut
    page.fill("#reject-form input[name=note]", "n")
    assert page.url.endswith(f"/empi/review/{ids[0]}")
    page.locator("#side-by-side").click()
    page.keyboard.press("n")
    page.wait_for_url(f"{base}/empi/review/{ids[1]}?done=rejected")
    assert page.locator("#done").is_visible()
    assert page.locator("#candidate-status").inner_text() == "待核对"
    # S skips to the next pair without deciding
    page.keyboard.press("s")
    page.wait_for_url(f"{base}/empi/review/{ids[2]}")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    # on a phone the two records stack: the new registration's cell sits above the other's
    first = page.locator("#field-name td").nth(0).bounding_box()
    second = page.locator("#field-name td").nth(1).bounding_box()
    assert first and second and second["y"] > first["y"] and abs(second["x"] - first["x"]) < 5
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling
    _shot(page, "detail-390")
    page.goto(f"{base}/empi/review")
    _shot(page, "list-390")
    # the list: the 1st pair is decided, two remain
    assert page.locator("#candidates tbody tr").count() == len(ids) - 1
