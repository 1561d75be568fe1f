"""Per village: the signing rate (everyone and 65+) and the older people's health management rate (老年人健康管理率:
residents 65+ with this year's health check over residents 65+), on the team page and the signing page, with the
list of older people not yet checked — each figure one a person can count from the residents by hand."""

from __future__ import annotations

from datetime import date, timedelta

from tests import builders as b
from tests.chronic import test_teams_registry
from tests.labelcheck import record_english, untranslated
from yilianti.chronic import screening, service, teams
from yilianti.kit import clock, i18n

D = date(2026, 3, 2)
_at = test_teams_registry._at
world = test_teams_registry.world  # 高桥村: 王辉煌 (1956), 李秀英 (1975), 陈美华 (1950); 上坪村: 张建国 (1980)


def test_village_signing_and_elderly_health_check_rates(db, client, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sub, team = world["sub"], world["team"]
    with clock.frozen(_at(D)):
        team.village = "高桥村、上坪村"
        service.sign_contract(db, sub, team.id, world["王辉煌"].id, "basic")
        service.sign_contract(db, sub, team.id, world["张建国"].id, "basic")
        last_year = screening.create_round(db, sub, "elderly65", D - timedelta(days=120), team.id, "高桥村")
        screening.record(db, sub, last_year.id, screening.ReadingIn(world["王辉煌"].id, 130, 80, None))
        check = screening.create_round(db, sub, "elderly65", D, team.id, "高桥村")
        screening.record(db, sub, check.id, screening.ReadingIn(world["陈美华"].id, 132, 82, None))
        rows = {r.name: r for r in teams.village_rates(db, sub)}
        gq, sp = rows["高桥村"], rows["上坪村"]
        assert (gq.rates["all"].signed, gq.rates["all"].residents) == (1, 3)
        assert (gq.rates["elderly"].signed, gq.rates["elderly"].residents) == (1, 2)  # 王辉煌 and 陈美华 are 65+
        assert (sp.rates["all"].signed, sp.rates["all"].residents, sp.rates["elderly"].residents) == (1, 1, 0)
        cover = {c.village: c for c in screening.coverage(db, sub, kind="elderly65")}
        # 王辉煌's check was last year: only 陈美华 counts this year
        assert (cover["高桥村"].screened, cover["高桥村"].residents, cover["高桥村"].percent) == (1, 2, 50.0)
        assert [p.name for p in cover["高桥村"].unscreened] == ["王辉煌"]

        token = b.login(client, "gqdoctor")
        assert token
        page = client.get(f"/chronic/teams/{team.id}").text
        row = page.split('data-village="高桥村"')[1].split("</tr>")[0]
        assert 'data-kind="signed" data-done="1" data-total="3"' in row
        assert 'data-kind="elderly_signed" data-done="1" data-total="2"' in row
        assert 'data-kind="elderly_checked" data-done="1" data-total="2"' in row and "50.0%" in row
        assert 'data-village="上坪村"' in client.get("/chronic/signing").text
        listed = client.get("/chronic/screening/coverage?kind=elderly65").text
        assert "王辉煌" in listed and "陈美华" not in listed.split("本年度尚未健康体检")[1]

        asked = record_english(monkeypatch)
        client.cookies.set("lang", "en")
        for path in (f"/chronic/teams/{team.id}", "/chronic/signing", "/chronic/screening/coverage?kind=elderly65",
                     "/chronic/screening/coverage"):
            assert client.get(path).status_code == 200, path
        assert not untranslated(asked) and not {m for m in i18n.MISSING_LABELS if m.startswith("chronic")}
