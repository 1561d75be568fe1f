"""The Baoding trusteeship's cockpit on the wall screen, in a real browser, on the demo: full screen at 1920×1080,
large type, the charts drawn, the panels rotating by themselves; and the drill-down from the cockpit to the
rows. Screenshots kept in YILIANTI_SCREENSHOTS (a directory) when set."""

from __future__ import annotations

import os

from sqlalchemy import select

from tests.browser.conftest import login
from yilianti.demo import dataset, loader
from yilianti.models.alliance import Alliance


def _seed(db):  # type: ignore[no-untyped-def]
    from yilianti.demo.cockpit import BAODING_KEY

    dataset.load_demo(db)
    return (next(a.password for a in loader.demo_accounts() if a.username == "baoding-doctor"),
            db.scalar(select(Alliance.id).where(Alliance.key == BAODING_KEY)))


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    where = os.environ.get("YILIANTI_SCREENSHOTS")
    if where:
        page.screenshot(path=os.path.join(where, f"cockpit-{name}.png"))


def test_wall_screen_rotates_large_panels_and_figures_drill_down(live_server, page) -> None:  # type: ignore[no-untyped-def]
    password, aid = live_server.seed(_seed)
    base = live_server.url
    page.set_viewport_size({"width": 1920, "height": 1080})
    login(page, base, "baoding-doctor", password)
    page.goto(f"{base}/cockpit/wall?alliance_id={aid}&start=2024-01&end=2026-11&rotate=5")
    page.wait_for_selector("#panel-headline.active")
    size = page.eval_on_selector("#tile-referral-up .wall-tile-value", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 60  # read from across the room
    assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight + 1")  # one screen
    _shot(page, "wall-headline")
    # the panels rotate by themselves; the Baoding chart is drawn (a canvas)
    page.wait_for_selector("#panel-chart-referral.active", timeout=9000)
    page.wait_for_timeout(1200)
    assert page.locator("#chart-referral canvas").count() >= 1
    _shot(page, "wall-referral")
    # the arrow keys step
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#panel-chart-sinking.active")
    assert page.url.endswith("#panel-chart-sinking")

    # the cockpit's figure opens the rows it counts
    page.goto(f"{base}/cockpit?alliance_id={aid}&start=2026-01&end=2026-11")
    page.click("#kpi-referral-up .kpi-name a")
    page.wait_for_selector("#drill-rows")
    assert page.locator("#drill-rows tbody tr").count() >= 1
    _shot(page, "drill")


def test_the_commission_s_county_cockpit_draws_grassroots_and_in_county_curves(live_server, page) -> None:  # type: ignore[no-untyped-def]
    """The Langfang commission on a laptop (1366 px) opens its cockpit on a county alliance: the chart of national
    (7) and (11) is drawn (a canvas), with both series and their target lines."""
    live_server.seed(_seed)
    base = live_server.url
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, base, "langfang-commission", loader.DEMO_PASSWORD)
    page.goto(f"{base}/cockpit")
    page.wait_for_selector("#chart-grassroots canvas")
    page.locator("#chart-grassroots").scroll_into_view_if_needed()
    page.wait_for_timeout(800)
    option = page.evaluate("echarts.getInstanceByDom(document.getElementById('chart-grassroots')).getOption()")
    assert [len([v for v in s["data"] if v is not None]) >= 10 for s in option["series"]] == [True, True]
    assert all(s["markLine"]["data"] for s in option["series"])  # the targets, dashed
    assert page.locator("#row-national-07_grassroots_visits").count() == 1
    _shot(page, "grassroots")
