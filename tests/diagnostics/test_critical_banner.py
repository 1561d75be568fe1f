"""A new critical value raises a banner on whatever page the ordering doctor has open (base.html polls
/workbench/live), tops the workbench in red with the time since the value, and goes once acknowledged."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests import builders as b
from tests.diagnostics.helpers import dx_world, received
from yilianti.diagnostics.reading import critical
from yilianti.diagnostics.reading import service as reading
from yilianti.kit import clock


def test_banner_and_red_workbench_entry_until_acknowledged(db: Session, client: TestClient) -> None:
    w = dx_world(db)
    b.login(client, w.usernames["site"])
    assert 'id="critical-banner"' not in client.get("/workbench/live").text
    page = client.get("/patients").text  # any page: it asks for the banner
    assert 'hx-get="/workbench/live"' in page and 'hx-trigger="load, every 30s"' in page
    order = received(db, w)
    t0 = clock.now()
    with clock.frozen(t0):
        reading.claim(db, w.reader, order.id)
        reading.sign(db, w.reader, order.id, findings="左侧基底节区高密度影", conclusion="脑出血", critical=True)
    db.flush()
    with clock.frozen(t0 + timedelta(minutes=7)):
        live = client.get("/workbench/live").text
        assert 'id="critical-banner"' in live and "赵桂兰" in live and "7 分钟前" in live
        assert 'href="/diagnostics/critical"' in live
        home = client.get("/").text
    assert home.index('id="critical-alerts"') < home.index('class="wb-groups"')  # first on the workbench
    assert "赵桂兰" in home and "7 分钟前" in home
    # the reading centre sees the value on its workbench but gets no banner: it is not theirs to acknowledge
    client.cookies.clear()
    b.login(client, w.usernames["reader"])
    assert 'id="critical-banner"' not in client.get("/workbench/live").text
    client.cookies.clear()
    b.login(client, w.usernames["site"])
    [row] = critical.list_for(db, w.site_doc)
    critical.acknowledge(db, w.site_doc, row.cv.id, "已通知患者")
    db.flush()
    assert 'id="critical-banner"' not in client.get("/workbench/live").text
