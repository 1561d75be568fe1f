"""What a user sees on the alliance, institution and admin pages."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from tests import builders as b
from tests.alliance.conftest import Tianjin, visiting_expert
from yilianti.models.alliance import Department, Institution
from yilianti.models.audit import AuditEvent


def _table(html: str, table_id: str) -> str:
    m = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert m, f"no table {table_id}"
    return m.group(1)


def test_alliance_page_groups_members_by_tier(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    doc = b.user(db, tj.dongli, "doctor", username="donglidoc")
    b.login(client, doc.username)
    page = client.get(f"/alliances/{tj.peds.id}")
    assert page.status_code == 200
    html = page.text
    lead, secondary, grassroots = (_table(html, f"tier-{t}") for t in ("lead", "secondary", "grassroots"))
    assert "天津市儿童医院" in lead and "牵头" in lead and "三级" in lead
    assert "东丽医院" in secondary and "津南区葛沽医院" in secondary  # level-1 general hospital: secondary
    assert "一级" in secondary
    assert "和平区劝业场街社区卫生服务中心" in grassroots and "二级" in grassroots  # level 2, still grassroots
    assert "河西区桃园街社区卫生服务中心" in grassroots and "社区卫生服务中心" in grassroots
    assert html.index('id="tier-lead"') < html.index('id="tier-secondary"') < html.index('id="tier-grassroots"')
    former = _table(html, "former-members")
    assert "咸水沽医院" in former and "2020-12-31" in former
    assert "咸水沽医院" not in secondary
    assert "33.34%" in html and "25%" in html and "全部下级成员" in html and "24" in html
    assert "紧密型" in html
    assert 'id="member-count">5<' in html
    assert "管理成员" not in html  # a doctor does not manage the alliance


def test_alliance_list_filters(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "sysadmin")
    page = client.get("/alliances").text
    row = re.search(rf'data-alliance-id="{tj.peds.id}">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "天津市儿童医院" in row and '<td class="member-count">5</td>' in row and "城市医疗集团" in row
    found = client.get("/alliances", params={"q": "桃园街"}).text  # a member's name finds both alliances
    assert "天津市儿科医疗联合体" in found and "天津医科大学总医院医联体" in found
    found = client.get("/alliances", params={"q": "儿科"}).text
    assert "天津市儿科医疗联合体" in found and "天津医科大学总医院医联体" not in found
    assert "天津市儿科医疗联合体" not in client.get("/alliances", params={"model": "county_community"}).text


def test_institution_page_shows_both_alliances_and_visitors(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    visiting_expert(db, tj)
    b.login(client, "taoyuanadmin")
    html = client.get(f"/institutions/{tj.taoyuan.id}").text
    alliances = _table(html, "institution-alliances")
    assert "天津市儿科医疗联合体" in alliances and "天津医科大学总医院医联体" in alliances
    assert "协作" in alliances and "成员" in alliances and "基层" in alliances
    visiting = _table(html, "visiting-practitioners")
    assert "刘志强" in visiting and "天津市儿童医院" in visiting and "周三" in visiting and "上午" in visiting
    home = _table(html, "home-practitioners")
    assert "王秀兰" in home and "刘志强" not in home
    assert "全科" in _table(html, "departments")
    assert "河西区" in html
    assert "科室管理" in html  # its own admin may edit


def test_english_labels_by_cookie(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "sysadmin")
    client.cookies.set("lang", "en")
    html = client.get(f"/alliances/{tj.peds.id}").text
    assert "Lead institutions" in html and "Grassroots members" in html and "Former members" in html
    assert "Community health centre" in html and "Tertiary (level 3)" in html
    assert "Urban medical group" in html and "All members below the lead" in html
    assert "牵头单位" not in html
    html = client.get(f"/institutions/{tj.taoyuan.id}").text
    assert "Alliances" in html and "Collaborating" in html


def test_institution_form_validation_stores_nothing(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, "sysadmin")
    before = db.scalar(select(func.count()).select_from(Institution))
    r = client.post("/admin/institutions/new", data={
        "csrf_token": token, "name": "东丽医院", "kind": "hospital", "level": "4", "province": "",
        "phone": "abc"})
    assert r.status_code == 422
    for name in ("name", "kind", "level", "province", "phone"):
        assert f'id="err-{name}"' in r.text
    assert "已有同名机构" in r.text and "取值不在允许范围内" in r.text
    assert db.scalar(select(func.count()).select_from(Institution)) == before
    r = client.post("/admin/institutions/new", data={
        "csrf_token": token, "name": "东丽区金桥街社区卫生服务中心", "kind": "community_center", "level": "",
        "province": "天津", "city": "天津", "county": "东丽区"}, follow_redirects=False)
    assert r.status_code == 303
    created = db.scalar(select(Institution).where(Institution.name == "东丽区金桥街社区卫生服务中心"))
    assert created is not None and created.level is None
    page = client.get(r.headers["location"]).text
    assert "未定级" in page and "机构已创建" in page


def test_institution_admin_cannot_edit_another(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, "taoyuanadmin")
    assert client.get(f"/admin/institutions/{tj.dongli.id}/edit").status_code == 403
    r = client.post(f"/admin/institutions/{tj.dongli.id}/edit", data={
        "csrf_token": token, "name": "东丽医院", "kind": "general", "province": "天津", "phone": "022-1"})
    assert r.status_code == 403
    assert client.get("/admin/institutions/999999/edit").status_code == 404
    own = client.get(f"/admin/institutions/{tj.taoyuan.id}/edit")
    assert own.status_code == 200 and "河西区桃园街社区卫生服务中心" in own.text
    listing = client.get("/admin/institutions").text
    assert "河西区桃园街社区卫生服务中心" in listing and "东丽医院" not in listing
    r = client.post(f"/admin/institutions/{tj.taoyuan.id}/edit", data={
        "csrf_token": token, "name": "河西区桃园街社区卫生服务中心", "kind": "community_center", "level": "1",
        "province": "天津", "city": "天津", "county": "河西区", "phone": "022-23456789"}, follow_redirects=False)
    assert r.status_code == 303
    event = db.scalar(select(AuditEvent).where(AuditEvent.resource_type == "institution",
                                               AuditEvent.resource_id == str(tj.taoyuan.id)))
    assert event.detail == {"phone": {"from": None, "to": "022-23456789"}}


def test_membership_admin_pages(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, "pedsadmin")
    page = client.get(f"/admin/alliances/{tj.peds.id}/members")
    assert page.status_code == 200 and "天津医科大学总医院" in page.text  # a candidate
    assert client.get(f"/admin/alliances/{tj.urban.id}/members").status_code == 403
    r = client.post(f"/admin/alliances/{tj.peds.id}/members", data={
        "csrf_token": token, "institution_id": str(tj.taoyuan.id), "role": "member", "joined_on": "2024-03-01"})
    assert r.status_code == 422 and 'id="err-institution_id"' in r.text
    r = client.post(f"/admin/alliances/{tj.peds.id}/members", data={
        "csrf_token": token, "institution_id": str(tj.general.id), "role": "guided", "joined_on": "2024-03-01"},
        follow_redirects=False)
    assert r.status_code == 303
    html = client.get(f"/alliances/{tj.peds.id}").text
    assert "天津医科大学总医院" in _table(html, "tier-secondary") and "指导" in _table(html, "tier-secondary")
    membership_id = re.search(r'data-membership-id="(\d+)">\s*<td><span class="tag secondary"', client.get(
        f"/admin/alliances/{tj.peds.id}/members").text)
    assert membership_id
    r = client.post(f"/admin/memberships/{membership_id.group(1)}/end",
                    data={"csrf_token": token, "left_on": "2000-01-01"})
    assert r.status_code == 422 and "退出日期不能早于加入日期" in r.text


def test_department_pages(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, "taoyuanadmin")
    r = client.post(f"/admin/institutions/{tj.taoyuan.id}/departments",
                    data={"csrf_token": token, "name": "预防保健科"}, follow_redirects=False)
    assert r.status_code == 303
    r = client.post(f"/admin/institutions/{tj.taoyuan.id}/departments", data={"csrf_token": token, "name": "预防保健科"})
    assert r.status_code == 422 and "本机构已有同名科室" in r.text
    dept = db.scalar(select(Department).where(Department.name == "预防保健科"))
    r = client.post(f"/admin/departments/{dept.id}/deactivate", data={"csrf_token": token}, follow_redirects=False)
    db.refresh(dept)
    assert r.status_code == 303 and dept.active is False
    assert client.post(f"/admin/institutions/{tj.dongli.id}/departments",
                       data={"csrf_token": token, "name": "儿科"}).status_code == 403


def test_unknown_ids_are_404_and_login_is_required(db, client, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    r = client.get(f"/alliances/{tj.peds.id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    b.login(client, "taoyuanadmin")
    assert client.get("/alliances/999999").status_code == 404
    assert client.get("/institutions/999999").status_code == 404
    assert client.get("/admin/alliances").status_code == 403  # an institution admin manages no alliance
