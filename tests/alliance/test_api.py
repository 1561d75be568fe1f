"""The JSON API: same rules as the pages, fixed error bodies."""

from __future__ import annotations

from sqlalchemy import func, select

from tests import builders as b
from tests.alliance.conftest import Tianjin
from yilianti.models.alliance import Alliance
from yilianti.models.audit import AuditEvent


def _h(token: str) -> dict[str, str]:
    return {"X-CSRF-Token": token}


def test_read_alliances_and_members(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/alliances").status_code == 401
    b.login(client, "taoyuanadmin")
    rows = client.get("/api/v1/alliances", params={"model": "urban_group", "q": "儿科"}).json()
    assert [r["key"] for r in rows] == ["tj-pediatric"]
    assert rows[0]["member_count"] == 5 and [i["name"] for i in rows[0]["leads"]] == ["天津市儿童医院"]
    assert rows[0]["reserve_for"] == "members" and rows[0]["slot_reserve_share"] == 0.3334
    members = client.get(f"/api/v1/alliances/{tj.peds.id}/members").json()
    tiers = {m["institution"]["name"]: m["tier"] for m in members}
    assert tiers["天津市儿童医院"] == "lead"
    assert tiers["津南区葛沽医院"] == "secondary"
    assert tiers["和平区劝业场街社区卫生服务中心"] == "grassroots"
    assert "咸水沽医院" not in tiers
    everyone = client.get(f"/api/v1/alliances/{tj.peds.id}/members", params={"include_former": True}).json()
    assert any(m["institution"]["name"] == "咸水沽医院" and not m["current"] for m in everyone)
    assert client.get("/api/v1/alliances/999999").json()["error"] == "not_found"
    inst = client.get(f"/api/v1/institutions/{tj.quanyechang.id}").json()
    assert inst["level"] == 2 and inst["grassroots"] is True


def test_create_alliance_validation(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, "sysadmin")
    before = db.scalar(select(func.count()).select_from(Alliance))
    r = client.post("/api/v1/alliances", headers=_h(token), json={
        "key": "tj-pediatric", "name": "天津市儿科医疗联合体", "model": "urban_group"})
    assert r.status_code == 422 and set(r.json()["fields"]) == {"key", "name"}
    r = client.post("/api/v1/alliances", headers=_h(token), json={
        "key": "jh-county", "name": "静海区县域医共体", "model": "county", "slot_reserve_share": 2})
    assert r.status_code == 422 and {"model", "slot_reserve_share"} <= set(r.json()["fields"])
    assert db.scalar(select(func.count()).select_from(Alliance)) == before
    r = client.post("/api/v1/alliances", headers={**_h(token), "Accept-Language": "en"}, json={
        "key": "jh-county", "name": "静海区县域医共体", "model": "county_community", "tight": True,
        "reserve_for": "grassroots"})
    assert r.status_code == 201 and r.json()["member_count"] == 0 and r.json()["tight"] is True
    alliance_id = r.json()["id"]
    assert db.scalar(select(AuditEvent).where(AuditEvent.resource_type == "alliance",
                                              AuditEvent.resource_id == str(alliance_id))).action == "create"
    r = client.patch(f"/api/v1/alliances/{alliance_id}", headers=_h(token), json={"bed_reserve_share": 1.5})
    assert r.status_code == 422 and "bed_reserve_share" in r.json()["fields"]
    r = client.patch(f"/api/v1/alliances/{alliance_id}", headers=_h(token), json={"name": "天津市儿科医疗联合体"})
    assert r.status_code == 422 and r.json()["fields"] == {"name": "已有同名医联体"}
    r = client.patch(f"/api/v1/alliances/{alliance_id}", headers=_h(token), json={"founded": "2019-07"})
    assert r.status_code == 200 and r.json()["founded"] == "2019-07"


def test_memberships_api(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, "pedsadmin")
    r = client.post(f"/api/v1/alliances/{tj.peds.id}/members", headers=_h(token),
                    json={"institution_id": tj.general.id, "role": "guided", "joined_on": "2024-01-01"})
    assert r.status_code == 201 and r.json()["tier"] == "secondary" and r.json()["current"] is True
    membership_id = r.json()["membership_id"]
    r = client.post(f"/api/v1/alliances/{tj.peds.id}/members", headers=_h(token),
                    json={"institution_id": tj.general.id, "role": "member"})
    assert r.status_code == 422 and "institution_id" in r.json()["fields"]
    r = client.post(f"/api/v1/alliances/{tj.urban.id}/members", headers=_h(token),
                    json={"institution_id": tj.dongli.id, "role": "member"})
    assert r.status_code == 403
    r = client.post(f"/api/v1/memberships/{membership_id}/end", headers=_h(token), json={"left_on": "2023-01-01"})
    assert r.status_code == 422 and r.json()["fields"] == {"left_on": "退出日期不能早于加入日期"}
    r = client.post(f"/api/v1/memberships/{membership_id}/end", headers=_h(token), json={})
    assert r.status_code == 200 and r.json()["current"] is False
    assert client.post(f"/api/v1/memberships/{membership_id}/end", headers=_h(token), json={}).status_code == 409
    assert client.post("/api/v1/memberships/999999/end", headers=_h(token), json={}).status_code == 404
    names = [a["name"] for a in client.get("/api/v1/alliances", params={"q": "天津医科大学总医院"}).json()]
    assert names == ["天津医科大学总医院医联体"]  # no longer a member of the pediatric alliance


def test_institution_api_permissions(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, "taoyuanadmin")
    r = client.patch(f"/api/v1/institutions/{tj.dongli.id}", headers=_h(token), json={"phone": "022-24391234"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert client.patch("/api/v1/institutions/999999", headers=_h(token), json={}).status_code == 404
    r = client.patch(f"/api/v1/institutions/{tj.taoyuan.id}", headers=_h(token), json={"level": 5})
    assert r.status_code == 422 and "level" in r.json()["fields"]
    r = client.patch(f"/api/v1/institutions/{tj.taoyuan.id}", headers=_h(token), json={"address": "河西区桃园街1号"})
    assert r.status_code == 200 and r.json()["address"] == "河西区桃园街1号"
    r = client.post("/api/v1/institutions", headers=_h(token), json={
        "name": "河西区挂甲寺街社区卫生服务中心", "kind": "community_center", "province": "天津"})
    assert r.status_code == 403
    r = client.post(f"/api/v1/institutions/{tj.taoyuan.id}/departments", headers=_h(token),
                    json={"name": "全科", "specialty": "general_practice"})
    assert r.status_code == 201
    r = client.post(f"/api/v1/institutions/{tj.taoyuan.id}/departments", headers={**_h(token), "Accept-Language": "en"},
                    json={"name": "全科"})
    assert r.status_code == 422
    assert r.json()["fields"] == {"name": "This institution already has a department with this name"}
    assert [d["name"] for d in client.get(f"/api/v1/institutions/{tj.taoyuan.id}/departments").json()] == ["全科"]
    assert client.post(f"/api/v1/institutions/{tj.dongli.id}/departments", headers=_h(token),
                       json={"name": "儿科"}).status_code == 403


def test_system_admin_creates_institution(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, "sysadmin")
    r = client.post("/api/v1/institutions", headers=_h(token), json={
        "name": "静海区大邱庄镇卫生院", "kind": "township", "level": 1, "province": "天津", "county": "静海区"})
    assert r.status_code == 201 and r.json()["grassroots"] is True
    r = client.post("/api/v1/institutions", headers=_h(token), json={
        "name": "静海区大邱庄镇卫生院", "kind": "township", "province": "天津"})
    assert r.status_code == 422 and r.json()["fields"] == {"name": "已有同名机构"}
    r = client.patch(f"/api/v1/institutions/{tj.xianshuigu.id}", headers=_h(token), json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert all(i["name"] != "咸水沽医院" for i in client.get("/api/v1/institutions").json())
