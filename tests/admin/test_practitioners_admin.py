"""Administering practitioners and their practice sites: validation, scoping, audit."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from tests import builders as b
from tests.workforce.helpers import tianjin
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent
from yilianti.models.workforce import PracticeSite, Practitioner


def _count(db, model) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(func.count()).select_from(model))


def _form(token: str, t, **kw) -> dict[str, str]:  # type: ignore[no-untyped-def]
    data = {"csrf_token": token, "name": "陈志强", "sex": "男", "title": "副主任医师", "specialty": "小儿消化",
            "home_institution_id": str(t.lead.id), "department_id": str(t.respiratory.id),
            "licence_date": "2012-09-01", "phone": "13612345678", "is_department_head": ""}
    data.update(kw)
    return data


def test_institution_admin_creates_practitioner_and_bad_input_stores_nothing(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    b.user(db, t.lead, "institution_admin", username="etyy-admin")
    token = b.login(client, "etyy-admin")
    before = _count(db, Practitioner)

    r = client.post("/admin/practitioners/new", data=_form(token, t, phone="1361234"))
    assert r.status_code == 422 and "手机号应为11位，以1开头" in r.text and 'id="err-phone"' in r.text
    future = (clock.today_local() + timedelta(days=3)).isoformat()
    r = client.post("/admin/practitioners/new", data=_form(token, t, licence_date=future))
    assert r.status_code == 422 and "执业起始日期不能晚于今天" in r.text
    r = client.post("/admin/practitioners/new", data=_form(token, t, department_id=str(t.community_gp.id)))
    assert r.status_code == 422 and "科室不属于所选执业机构" in r.text
    assert 'value="陈志强"' in r.text  # the form keeps what was typed
    r = client.post("/admin/practitioners/new", data=_form(token, t, title="教授"))
    assert r.status_code == 422 and "职称不在允许范围内" in r.text
    assert _count(db, Practitioner) == before

    # the JSON API answers with field messages too
    api = client.post("/api/v1/practitioners", headers={"X-CSRF-Token": token},
                      json={"name": "陈志强", "title": "副主任医师", "home_institution_id": t.lead.id,
                            "phone": "12345", "licence_date": future})
    assert api.status_code == 422 and set(api.json()["fields"]) >= {"phone", "licence_date"}
    assert _count(db, Practitioner) == before

    r = client.post("/admin/practitioners/new", data=_form(token, t, is_department_head="1"), follow_redirects=False)
    assert r.status_code == 303
    created = db.scalar(select(Practitioner).where(Practitioner.name == "陈志强"))
    assert created and created.is_department_head and created.phone == "13612345678"
    event = db.scalar(select(AuditEvent).where(AuditEvent.resource_type == "practitioner",
                                               AuditEvent.resource_id == str(created.id)))
    assert event and event.action == "create" and event.acting_institution_id == t.lead.id

    # edit: the audit keeps what changed
    r = client.post(f"/admin/practitioners/{created.id}", data=_form(token, t, title="主任医师", is_department_head="1"),
                    follow_redirects=False)
    assert r.status_code == 303
    update = db.scalar(select(AuditEvent).where(AuditEvent.resource_type == "practitioner",
                                                AuditEvent.action == "update"))
    assert update and update.detail == {"title": {"from": "副主任医师", "to": "主任医师"}}

    # another institution's practitioner is not administrable here (404); creating one there is forbidden
    r = client.post(f"/admin/practitioners/{t.gp.id}", data=_form(token, t, home_institution_id=str(t.community.id),
                                                                   department_id=""))
    assert r.status_code == 404
    r = client.post("/api/v1/practitioners", headers={"X-CSRF-Token": token},
                    json={"name": "李娜", "title": "主治医师", "home_institution_id": t.community.id})
    assert r.status_code == 403


def test_practice_sites_validation_duplicates_and_end(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    b.user(db, None, "system_admin", username="root")
    token = b.login(client, "root")
    h = {"X-CSRF-Token": token}
    url = f"/api/v1/practitioners/{t.expert.id}/sites"

    # the same Wednesday morning at the same centre (an all-day session overlaps the morning)
    dup = client.post(url, headers=h, json={"institution_id": t.community.id, "weekday": 3, "period": "all"})
    assert dup.status_code == 422 and dup.json()["fields"]["weekday"] == "该时段已有相同机构的出诊安排"
    clash = client.post(url, headers=h, json={"institution_id": t.other.id, "weekday": 3, "period": "am"})
    assert clash.status_code == 422 and "其他机构" in clash.json()["fields"]["weekday"]
    bad = client.post(url, headers=h, json={"institution_id": t.other.id, "weekday": 8, "period": "noon",
                                            "starts_on": "2025-05-01", "ends_on": "2025-04-01"})
    assert bad.status_code == 422 and {"weekday", "period"} <= set(bad.json()["fields"])
    backwards = client.post(url, headers=h, json={"institution_id": t.other.id, "weekday": 5,
                                                  "starts_on": "2025-05-01", "ends_on": "2025-04-01"})
    assert backwards.status_code == 422 and backwards.json()["fields"] == {"ends_on": "结束日期不能早于开始日期"}
    home = client.post(url, headers=h, json={"institution_id": t.lead.id, "weekday": 5})
    assert home.status_code == 422 and "institution_id" in home.json()["fields"]
    dept = client.post(url, headers=h, json={"institution_id": t.other.id, "weekday": 5,
                                             "department_id": t.community_gp.id})
    assert dept.status_code == 422 and "department_id" in dept.json()["fields"]
    assert _count(db, PracticeSite) == 1

    # Wednesday afternoon at the centre and a Friday expert team visit elsewhere are fine
    ok = client.post(url, headers=h, json={"institution_id": t.community.id, "weekday": 3, "period": "pm"})
    assert ok.status_code == 201
    ok = client.post(url, headers=h, json={"institution_id": t.other.id, "weekday": 5, "period": "all",
                                           "starts_on": "2025-01-01"})
    assert ok.status_code == 201
    assert {(s["weekday"], s["period"]) for s in ok.json()["sites"]} == {(3, "am"), (3, "pm"), (5, "all")}
    # after the earlier arrangement ends, a new one for the same time may start
    client.post(f"/api/v1/practitioners/{t.expert.id}/sites/{t.site.id}/end", headers=h)
    db.expire_all()
    ended = db.get(PracticeSite, t.site.id)
    assert ended is not None and ended.ends_on == clock.today_local()
    later = (clock.today_local() + timedelta(days=7)).isoformat()
    again = client.post(url, headers=h, json={"institution_id": t.community.id, "weekday": 3, "period": "am",
                                              "starts_on": later})
    assert again.status_code == 201

    # the page: remove a session entered by mistake; an end date before the start is refused
    friday = db.scalar(select(PracticeSite).where(PracticeSite.weekday == 5))
    assert friday is not None
    r = client.post(f"/admin/practitioners/{t.expert.id}/sites/{friday.id}/end",
                    data={"csrf_token": token, "ends_on": "2024-06-01"})
    assert r.status_code == 422 and "结束日期不能早于开始日期" in r.text
    r = client.post(f"/admin/practitioners/{t.expert.id}/sites/{friday.id}/remove", data={"csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303
    assert db.scalar(select(PracticeSite).where(PracticeSite.weekday == 5)) is None
    actions = [a for (a,) in db.execute(select(AuditEvent.action).where(AuditEvent.resource_type == "practice_site")
                                        .order_by(AuditEvent.id))]
    assert actions == ["create", "create", "update", "create", "delete"]

    # the admin page shows the weekly arrangements and a site form
    page = client.get(f"/admin/practitioners/{t.expert.id}")
    assert page.status_code == 200 and 'id="site-form"' in page.text and "周三" in page.text


def test_site_form_errors_on_page(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    b.user(db, t.lead, "institution_admin", username="etyy-admin")
    token = b.login(client, "etyy-admin")
    r = client.post(f"/admin/practitioners/{t.expert.id}/sites",
                    data={"csrf_token": token, "institution_id": str(t.community.id), "weekday": "3",
                          "period": "am", "starts_on": "", "ends_on": ""})
    assert r.status_code == 422 and "该时段已有相同机构的出诊安排" in r.text
    r = client.post(f"/admin/practitioners/{t.expert.id}/sites",
                    data={"csrf_token": token, "institution_id": str(t.community.id), "weekday": "1",
                          "period": "am", "starts_on": "2025-03-03", "ends_on": ""}, follow_redirects=False)
    assert r.status_code == 303
    detail = client.get(f"/practitioners/{t.expert.id}")
    assert 'data-day="1" data-period="am"><div><a href="/institutions/' in detail.text


def test_alliance_admin_reads_but_cannot_change(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    from yilianti.auth import service as auth_service
    from yilianti.models.alliance import Alliance

    alliance = db.scalar(select(Alliance).where(Alliance.name == "天津市儿童医院儿科医联体"))
    auth_service.create_user(db, None, "ylt-office", b.PASSWORD, "医联体办公室",
                             [("alliance_admin", None, alliance.id)])
    token = b.login(client, "ylt-office")
    listing = client.get("/admin/practitioners")
    assert listing.status_code == 200 and "刘建华" in listing.text and "王丽" in listing.text
    assert "天津市第一中心医院" not in listing.text.split('id="admin-practitioners"')[1]
    page = client.get(f"/admin/practitioners/{t.expert.id}")
    assert page.status_code == 200 and "disabled" in page.text and 'id="site-form"' not in page.text
    r = client.patch(f"/api/v1/practitioners/{t.expert.id}", headers={"X-CSRF-Token": token}, json={"title": "主治医师"})
    assert r.status_code == 403
    db.expire_all()
    assert db.get(Practitioner, t.expert.id).title == "主任医师"  # type: ignore[union-attr]


def test_deactivated_practitioner_leaves_the_directory(db, client):  # type: ignore[no-untyped-def]
    from yilianti.workforce import service

    t = tianjin(db)
    b.user(db, t.lead, "institution_admin", username="etyy-admin")
    token = b.login(client, "etyy-admin")
    r = client.post(f"/admin/practitioners/{t.expert.id}/active", data={"csrf_token": token, "active": "0"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "刘建华" not in client.get("/practitioners").text
    assert "刘建华" in client.get("/admin/practitioners").text  # still administrable
    assert t.expert.id not in {p.id for p in service.practising_at(db, t.community.id)}
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "deactivate",
                                               AuditEvent.resource_type == "practitioner"))
    assert event and event.detail == {"active": {"from": True, "to": False}}
    r = client.patch(f"/api/v1/practitioners/{t.expert.id}", headers={"X-CSRF-Token": token}, json={"active": True})
    assert r.status_code == 200 and r.json()["active"] is True
