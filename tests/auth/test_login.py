"""Login, lock-out, CSRF, password change, error bodies."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests import builders as b
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent


def test_login_logout_and_home_shows_acting_institution(db, client):  # type: ignore[no-untyped-def]
    inst = b.institution(db, "天津市儿童医院")
    b.user(db, inst, "doctor", username="tjdoc")
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    csrf = b.login(client, "tjdoc")
    home = client.get("/")
    assert "天津市儿童医院" in home.text and 'id="acting-institution"' in home.text
    client.post("/logout", data={"csrf_token": csrf})
    assert client.get("/", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_on_the_server(db, app):  # type: ignore[no-untyped-def]
    """A copy of the cookie taken before the logout no longer signs anyone in (pages, API, the hot paths)."""
    from fastapi.testclient import TestClient

    inst = b.institution(db)
    b.user(db, inst, "doctor", username="outdoc")
    with TestClient(app) as browser, TestClient(app) as thief:
        csrf = b.login(browser, "outdoc")
        thief.cookies.update(dict(browser.cookies))  # captured before the logout
        assert thief.get("/", follow_redirects=False).status_code == 200
        assert thief.get("/api/v1/patients").status_code == 200
        browser.post("/logout", data={"csrf_token": csrf})
        assert thief.get("/", follow_redirects=False).status_code == 303
        assert thief.get("/api/v1/patients").status_code == 401
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.username == "outdoc", AuditEvent.action == "logout"))
    # a new login is a new session, unaffected by the ended one
    with TestClient(app) as again:
        b.login(again, "outdoc")
        assert again.get("/api/v1/patients").status_code == 200


def test_wrong_password_locks_account_after_five_failures(db, client):  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    b.user(db, inst, "doctor", username="locky")
    page = client.get("/login")
    token = b._csrf(page.text)
    for _ in range(5):
        r = client.post("/login", data={"username": "locky", "password": "wrong-pass1", "csrf_token": token})
        assert r.status_code in (401, 423)
        assert "用户名或密码不正确" in r.text
    r = client.post("/login", data={"username": "locky", "password": b.PASSWORD, "csrf_token": token})
    assert r.status_code == 401 and "锁定" in r.text  # even the right password is refused while locked
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.username == "locky", AuditEvent.action == "login_locked"))
    with clock.frozen(clock.now() + timedelta(minutes=16)):
        r = client.post("/login", data={"username": "locky", "password": b.PASSWORD, "csrf_token": token},
                        follow_redirects=False)
        assert r.status_code == 303
    failures = db.scalars(select(AuditEvent).where(AuditEvent.username == "locky",
                                                   AuditEvent.action == "login_failed")).all()
    assert len(failures) == 5


def test_lock_out_does_not_tell_which_usernames_exist(db, client, monkeypatch):  # type: ignore[no-untyped-def]
    """Unknown user, wrong password, locked account: the same status and page, and one password hash each."""
    import re

    from yilianti.auth import service

    inst = b.institution(db)
    b.user(db, inst, "doctor", username="realdoc")
    hashes: list[str] = []
    real_verify = service.verify_password
    monkeypatch.setattr(service, "verify_password", lambda p, h: hashes.append(h) or real_verify(p, h))
    token = b._csrf(client.get("/login").text)

    def answer(username: str, password: str = "wrong-pass1") -> tuple[int, str]:
        hashes.clear()
        r = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
        assert len(hashes) == 1  # the same work whether the user exists or not
        alert = re.search(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', r.text, re.S)
        return r.status_code, alert.group(1) if alert else r.text

    known = [answer("realdoc") for _ in range(6)]
    unknown = [answer("nobody-here") for _ in range(6)]
    assert known == unknown
    assert answer("realdoc", b.PASSWORD) == answer("nobody-here", b.PASSWORD)  # locked vs unknown
    assert known[0][0] == 401 and "锁定" in known[0][1]


def test_post_without_csrf_token_is_refused(db, client):  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    b.user(db, inst, "doctor", username="csrfdoc")
    b.login(client, "csrfdoc")
    r = client.post("/api/v1/patients", json={"name": "张三", "birth_date": "2010-01-01"})
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
    r = client.post("/patients/new", data={"name": "张三", "birth_date": "2010-01-01"})
    assert r.status_code == 403


def test_password_change_ends_other_sessions(db, app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    inst = b.institution(db)
    b.user(db, inst, "doctor", username="pwdoc")
    with TestClient(app) as one, TestClient(app) as two:
        csrf = b.login(one, "pwdoc")
        b.login(two, "pwdoc")
        bad = one.post("/account/password", data={"csrf_token": csrf, "current_password": b.PASSWORD,
                                                  "new_password": "short", "confirm_password": "short"})
        assert bad.status_code == 422 and "密码太短" in bad.text
        ok = one.post("/account/password", data={"csrf_token": csrf, "current_password": b.PASSWORD,
                                                 "new_password": "NewPassw0rd", "confirm_password": "NewPassw0rd"})
        assert ok.status_code == 200 and "密码已修改" in ok.text
        assert one.get("/", follow_redirects=False).status_code == 200
        assert two.get("/", follow_redirects=False).status_code == 303  # the other session ended


def test_json_errors_follow_the_contract_and_language(db, client):  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    b.user(db, inst, "doctor", username="errdoc")
    csrf = b.login(client, "errdoc")
    r = client.post("/api/v1/patients", json={"name": "张三", "resident_id": "110105194912310021",
                                              "phone": "12345"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"error", "message", "fields"} and body["error"] == "invalid_input"
    assert "校验位" in body["fields"]["resident_id"] and "手机号" in body["fields"]["phone"]
    en = client.post("/api/v1/patients", json={"name": "张三", "phone": "12345", "birth_date": "2010-01-01"},
                     headers={"X-CSRF-Token": csrf, "Accept-Language": "en"})
    assert en.status_code == 422 and "mobile" in en.json()["fields"]["phone"].lower()
    malformed = client.post("/api/v1/patients", content=b"{not json", headers={
        "X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert malformed.status_code == 422 and "Traceback" not in malformed.text
    assert client.get("/api/v1/nothing-here").json()["error"] == "not_found"


def test_unauthenticated_api_gets_401_json(client):  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/patients")
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    r = client.get("/api/v1/patients", headers={"Authorization": "Bearer ylt_bogus"})
    assert r.status_code == 401 and r.json()["error"] == "bad_token"
