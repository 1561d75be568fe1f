"""The cached fast path of `GET /api/v1/cockpit/figures` (API tokens): the route's own answer, kept; the same
access rule (a viewer outside the alliance is refused even when another viewer's answer is kept); and what it does
not take goes to the route."""

from __future__ import annotations

from sqlalchemy import select

from tests import builders as b
from tests.cockpit.test_rollup import Q1
from tests.live import api_token
from yilianti.cockpit import fastpath, rollup, service
from yilianti.config import get_settings
from yilianti.models.alliance import Institution

URL = "/api/v1/cockpit/figures?alliance_id={aid}&start=2026-01&end=2026-03&codes=referral.up,referral.down_rate"


def test_the_fast_path_answers_as_the_route_and_keeps_the_answer(db, client, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    rollup.build(db, [aid], *Q1)
    service._cache.clear()
    fastpath.clear()
    doctor = api_token(db, b.subject_for(db, world["doctor"]))
    stranger = api_token(db, b.subject_for(db, world["stranger"]))
    db.flush()
    url = URL.format(aid=aid)
    served = fastpath.stats["statement"]
    fast = client.get(url, headers={"Authorization": f"Bearer {doctor}"})
    assert fast.status_code == 200, fast.text
    assert fastpath.stats["statement"] == served + 1
    figures = {f["code"]: f for f in fast.json()["figures"]}
    assert figures["referral.up"]["value"] == 3 and figures["referral.up"]["by_month"]["2026-01"] == 2
    settings = get_settings()
    settings.cockpit_fast_path = False
    try:
        reference = client.get(url, headers={"Authorization": f"Bearer {doctor}"})
    finally:
        settings.cockpit_fast_path = True
    assert fastpath.stats["statement"] == served + 1 and reference.json() == fast.json()
    # kept: a second viewer's question is answered from the kept answer, without the database
    assert client.get(url, headers={"Authorization": f"Bearer {doctor}"}).json() == fast.json()
    assert fastpath.stats["statement"] == served + 2
    # the same question from a viewer outside the alliance: the route's refusal, not the kept answer
    refused = client.get(url, headers={"Authorization": f"Bearer {stranger}"})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert fastpath.stats["statement"] == served + 2
    # what the route judges goes to it: a bad id, a repeated parameter, an unknown alliance, a reversed period
    for bad, status in ((f"/api/v1/cockpit/figures?alliance_id=x{aid}", 422),
                        (f"/api/v1/cockpit/figures?alliance_id={aid}&alliance_id={aid}", 200),
                        ("/api/v1/cockpit/figures?alliance_id=999999", 404),
                        (f"/api/v1/cockpit/figures?alliance_id={aid}&start=2026-05&end=2026-01", 422)):
        r = client.get(bad, headers={"Authorization": f"Bearer {doctor}"})
        assert r.status_code == status, (bad, r.text)
        assert status == 200 or r.json()["error"]
    assert fastpath.stats["statement"] == served + 2
    # a member filter is part of the question
    county = db.scalar(select(Institution.id).where(Institution.name == "涞源县医院"))
    mine = client.get(url + f"&member={county}", headers={"Authorization": f"Bearer {doctor}"}).json()
    assert mine["member"] == county and {f["code"]: f["value"] for f in mine["figures"]}["referral.up"] == 2
