"""User administration: creation, scoping, deactivation, roles, acting institution, API tokens, audit."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests import builders as b
from tests.workforce.helpers import tianjin
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import RoleAssignment, User
from yilianti.models.patient import CareRelationship


def _users(db) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(func.count()).select_from(User))


def test_admin_index_only_for_administrators(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    b.user(db, t.community, "doctor", username="wangli")
    b.user(db, t.community, "institution_admin", username="taoyuan-admin")
    b.login(client, "wangli")
    assert client.get("/admin").status_code == 403
    assert client.get("/admin/users").status_code == 403
    assert client.get("/api/v1/users").status_code == 403
    client.cookies.clear()
    assert client.get("/admin", follow_redirects=False).headers["location"].startswith("/login")
    b.login(client, "taoyuan-admin")
    page = client.get("/admin")
    assert page.status_code == 200
    for link in ("/admin/alliances", "/admin/institutions", "/admin/practitioners", "/admin/users", "/audit"):
        assert f'href="{link}"' in page.text


def test_create_user_with_role_and_validation(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    b.user(db, t.community, "institution_admin", username="taoyuan-admin")
    token = b.login(client, "taoyuan-admin")
    before = _users(db)
    form = {"csrf_token": token, "username": "taoyuan-admin", "display_name": "王丽", "password": "Wangli2024",
            "confirm_password": "Wangli2024", "practitioner_id": str(t.gp.id), "role": "doctor",
            "institution_id": str(t.community.id)}

    dup = client.post("/admin/users/new", data=form)
    assert dup.status_code == 422 and "用户名已存在" in dup.text and 'id="err-username"' in dup.text
    weak = client.post("/admin/users/new", data=form | {"username": "wangli", "password": "12345678",
                                                         "confirm_password": "12345678"})
    assert weak.status_code == 422 and "密码需同时包含字母和数字" in weak.text
    bad_name = client.post("/admin/users/new", data=form | {"username": "王丽"})
    assert bad_name.status_code == 422 and 'id="err-username"' in bad_name.text
    other_pract = client.post("/admin/users/new", data=form | {"username": "wangli",
                                                                "practitioner_id": str(t.expert.id)})
    assert other_pract.status_code == 422 and "只能关联本机构的医务人员" in other_pract.text
    api_dup = client.post("/api/v1/users", headers={"X-CSRF-Token": token},
                          json={"username": "TAOYUAN-ADMIN", "display_name": "王丽", "password": "Wangli2024",
                                "roles": [{"role": "doctor", "institution_id": t.community.id}]})
    assert api_dup.status_code == 422 and api_dup.json()["fields"] == {"username": "用户名已存在"}
    assert _users(db) == before

    ok = client.post("/admin/users/new", data=form | {"username": "wangli"}, follow_redirects=False)
    assert ok.status_code == 303
    user = db.scalar(select(User).where(User.username == "wangli"))
    assert user is not None and user.practitioner_id == t.gp.id
    roles = db.execute(select(RoleAssignment.role, RoleAssignment.institution_id)
                       .where(RoleAssignment.user_id == user.id)).all()
    assert roles == [("doctor", t.community.id)]
    created = db.scalar(select(AuditEvent).where(AuditEvent.resource_type == "user", AuditEvent.action == "create",
                                                 AuditEvent.resource_id == str(user.id)))
    assert created and created.username == "taoyuan-admin" and created.acting_institution_id == t.community.id

    # the new user can log in with the given password
    client.cookies.clear()
    b.login(client, "wangli", "Wangli2024")
    assert client.get("/api/v1/me").json()["acting_institution"]["name"] == "河西区桃园街社区卫生服务中心"


def test_institution_admin_cannot_create_user_at_another_institution(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    b.user(db, t.community, "institution_admin", username="taoyuan-admin")
    token = b.login(client, "taoyuan-admin")
    before = _users(db)
    body = {"username": "liujh", "display_name": "刘建华", "password": "Liujh2024x",
            "roles": [{"role": "doctor", "institution_id": t.lead.id}]}
    r = client.post("/api/v1/users", headers={"X-CSRF-Token": token}, json=body)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    page = client.post("/admin/users/new", data={"csrf_token": token, "username": "liujh", "display_name": "刘建华",
                                                 "password": "Liujh2024x", "confirm_password": "Liujh2024x",
                                                 "role": "doctor", "institution_id": str(t.lead.id)})
    assert page.status_code == 403
    sysadmin = {"username": "liujh", "display_name": "刘建华", "password": "Liujh2024x",
                "roles": [{"role": "system_admin"}]}
    assert client.post("/api/v1/users", headers={"X-CSRF-Token": token}, json=sysadmin).status_code == 403
    assert _users(db) == before

    # users of another institution are not even listed
    b.user(db, t.lead, "doctor", username="liujh")
    listing = client.get("/api/v1/users").json()
    assert [u["username"] for u in listing["items"]] == ["taoyuan-admin"]
    other = db.scalar(select(User.id).where(User.username == "liujh"))
    assert client.get(f"/api/v1/users/{other}").status_code == 404
    assert client.patch(f"/api/v1/users/{other}", headers={"X-CSRF-Token": token},
                        json={"active": False}).status_code == 404


def test_deactivated_user_session_stops_working(db, app, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    doctor = b.user(db, t.community, "doctor", username="wangli")
    b.user(db, t.community, "institution_admin", username="taoyuan-admin")
    b.login(client, "wangli")
    assert client.get("/practitioners").status_code == 200

    with TestClient(app, raise_server_exceptions=False) as admin:
        token = b.login(admin, "taoyuan-admin")
        r = admin.post(f"/admin/users/{doctor.id}/active", data={"csrf_token": token, "active": "0"},
                       follow_redirects=False)
        assert r.status_code == 303
        assert "已停用" in admin.get(f"/admin/users/{doctor.id}").text

    page = client.get("/practitioners", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert client.get("/api/v1/me").status_code == 401
    r = client.post("/login", data={"username": "wangli", "password": b.PASSWORD,
                                    "csrf_token": b._csrf(client.get("/login").text)})
    assert r.status_code == 401
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "deactivate"))
    assert event and event.resource_id == str(doctor.id) and event.detail == {"active": {"from": True, "to": False}}


def test_switch_acting_institution_and_me(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    from yilianti.auth import service as auth_service

    auth_service.create_user(db, None, "liujh", b.PASSWORD, "刘建华",
                             [("doctor", t.lead.id, None), ("doctor", t.community.id, None)],
                             practitioner_id=t.expert.id)
    token = b.login(client, "liujh")
    me = client.get("/api/v1/me").json()
    assert me["acting_institution"] == {"id": t.lead.id, "name": "天津市儿童医院"}  # home institution first
    assert {i["name"] for i in me["institutions"]} == {"天津市儿童医院", "河西区桃园街社区卫生服务中心"}
    assert me["roles"] == ["doctor"] and me["practitioner_id"] == t.expert.id and not me["via_token"]

    r = client.post("/switch-institution", data={"csrf_token": token, "institution_id": str(t.community.id),
                                                  "next": "/practitioners"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/v1/me").json()["acting_institution"]["id"] == t.community.id
    assert 'selected>河西区桃园街社区卫生服务中心' in client.get("/practitioners").text
    refused = client.post("/switch-institution", data={"csrf_token": token, "institution_id": str(t.other.id)})
    assert refused.status_code == 422
    assert client.get("/api/v1/me").json()["acting_institution"]["id"] == t.community.id


def test_api_token_acts_for_its_institution_without_csrf(db, app, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    his = b.user(db, t.community, "doctor", username="taoyuan-his")
    b.user(db, None, "system_admin", username="root")
    csrf = b.login(client, "root")

    page = client.post(f"/admin/users/{his.id}/tokens", data={"csrf_token": csrf, "name": "桃园街社区HIS",
                                                              "institution_id": str(t.community.id), "days": "30"})
    assert page.status_code == 200 and 'id="token-value"' in page.text
    assert page.headers["cache-control"] == "no-store"
    bearer = page.text.split('id="token-value"')[1].split(">")[1].split("<")[0]
    assert bearer.startswith("ylt_")
    assert bearer not in client.get(f"/admin/users/{his.id}").text  # shown once
    wrong_inst = client.post(f"/api/v1/users/{his.id}/tokens", headers={"X-CSRF-Token": csrf},
                             json={"institution_id": t.lead.id, "name": "x"})
    assert wrong_inst.status_code == 422 and "institution_id" in wrong_inst.json()["fields"]

    with TestClient(app, raise_server_exceptions=False) as system:  # no cookie, no CSRF token
        h = {"Authorization": f"Bearer {bearer}"}
        me = system.get("/api/v1/me", headers=h).json()
        assert me["username"] == "taoyuan-his" and me["via_token"]
        assert me["acting_institution"]["id"] == t.community.id
        r = system.post("/api/v1/patients", headers=h, json={
            "name": "张小雨", "sex": "女", "birth_date": "2019-05-20", "phone": "13820001111", "mrn": "TY0001"})
        assert r.status_code == 201, r.text
        care = db.scalar(select(CareRelationship).where(CareRelationship.patient_id == r.json()["id"]))
        assert care is not None and care.institution_id == t.community.id
        assert system.post("/api/v1/patients", json={"name": "张小雨"}).status_code in (401, 403)
        assert system.get("/api/v1/me", headers={"Authorization": "Bearer ylt_nonsense"}).status_code == 401

        # revoked: stops working
        token_id = db.scalar(select(AuditEvent.resource_id).where(AuditEvent.resource_type == "api_token"))
        r = client.post(f"/admin/users/{his.id}/tokens/{token_id}/revoke", data={"csrf_token": csrf},
                        follow_redirects=False)
        assert r.status_code == 303
        assert system.get("/api/v1/me", headers=h).status_code == 401


def test_roles_password_reset_unlock_and_audit(db, app, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    nurse = b.user(db, t.community, "nurse", username="zhaomin")
    b.user(db, t.community, "institution_admin", username="taoyuan-admin")
    csrf = b.login(client, "taoyuan-admin")
    h = {"X-CSRF-Token": csrf}

    added = client.post(f"/api/v1/users/{nurse.id}/roles", headers=h,
                        json={"role": "coordinator", "institution_id": t.community.id})
    assert added.status_code == 201 and added.json()["institution_name"] == "河西区桃园街社区卫生服务中心"
    again = client.post(f"/api/v1/users/{nurse.id}/roles", headers=h,
                        json={"role": "coordinator", "institution_id": t.community.id})
    assert again.status_code == 422 and again.json()["fields"] == {"role": "该用户已有此角色"}
    elsewhere = client.post(f"/api/v1/users/{nurse.id}/roles", headers=h,
                            json={"role": "doctor", "institution_id": t.lead.id})
    assert elsewhere.status_code == 403
    removed = client.delete(f"/api/v1/users/{nurse.id}/roles/{added.json()['id']}", headers=h)
    assert removed.status_code == 204
    assert [r["role"] for r in client.get(f"/api/v1/users/{nurse.id}").json()["roles"]] == ["nurse"]

    # a lock-out after failed logins, lifted by the administrator
    nurse.locked_until = clock.now() + timedelta(minutes=10)
    nurse.failed_logins = 0
    db.flush()
    assert client.get(f"/api/v1/users/{nurse.id}").json()["locked"] is True
    assert "解除锁定" in client.get(f"/admin/users/{nurse.id}").text
    r = client.post(f"/admin/users/{nurse.id}/unlock", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get(f"/api/v1/users/{nurse.id}").json()["locked"] is False

    # temporary password: the old one stops working and live sessions end
    with TestClient(app, raise_server_exceptions=False) as nurse_client:
        b.login(nurse_client, "zhaomin")
        bad = client.post(f"/admin/users/{nurse.id}/password",
                          data={"csrf_token": csrf, "password": "Temp2024a", "confirm_password": "Temp2024b"})
        assert bad.status_code == 422 and "两次输入的密码不一致" in bad.text
        r = client.post(f"/admin/users/{nurse.id}/password",
                        data={"csrf_token": csrf, "password": "Temp2024a", "confirm_password": "Temp2024a"},
                        follow_redirects=False)
        assert r.status_code == 303
        assert nurse_client.get("/api/v1/me").status_code == 401
        nurse_client.cookies.clear()
        b.login(nurse_client, "zhaomin", "Temp2024a")

    # renamed through PATCH; the audit keeps the diff
    r = client.patch(f"/api/v1/users/{nurse.id}", headers=h, json={"display_name": "赵敏"})
    assert r.status_code == 200 and r.json()["display_name"] == "赵敏"
    self_off = client.patch(f"/api/v1/users/{nurse.id - 0}", headers=h, json={"display_name": " "})
    assert self_off.status_code == 422
    events = db.execute(select(AuditEvent.action, AuditEvent.detail).where(
        AuditEvent.resource_type == "user", AuditEvent.resource_id == str(nurse.id),
        AuditEvent.user_id.is_not(None)).order_by(AuditEvent.id)).all()
    actions = [a for a, _ in events]
    assert actions == ["grant_role", "revoke_role", "unlock", "reset_password", "update"]
    assert events[-1][1] == {"display_name": {"from": "用户zhaomin", "to": "赵敏"}}
    assert events[0][1]["role"] == "coordinator"
