"""Credentials that ended — a session cookie captured before its logout, an API token revoked — get 401 on every
/api/v1 operation, whatever the body (issue 18 item 2): never a 422 that asks the client to fix a body, a 403
`csrf_failed` or a 404, which would each tell a signed-out client something and send it the wrong way.

The operations come from the OpenAPI, so a route added later is covered without being listed here."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import builders as b
from yilianti.auth import service as auth_service

BODIES = {  # a body each kind of endpoint refuses: FastAPI answers these before any dependency runs
    "application/json": (b"{not json", "application/json"),
    "multipart/form-data": (b"--xx\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nbroken",
                            "multipart/form-data; boundary=xx"),
    "application/x-www-form-urlencoded": (b"a=%zz&b", "application/x-www-form-urlencoded"),
}


def operations(app: Any) -> list[tuple[str, str, bytes, str | None]]:
    """(method, path with ids filled in, a bad body, its content type) for every /api/v1 operation."""
    out = []
    for path, item in app.openapi()["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            content = (op.get("requestBody") or {}).get("content") or {}
            kind = next((k for k in BODIES if k in content), None)
            body, ctype = BODIES[kind] if kind else (b"{not json", "application/json")
            out.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path), body if method != "get" else b"",
                        ctype if method != "get" else None))
    return out


def _unauthenticated(r: Any, codes: tuple[str, ...], where: str) -> None:
    assert r.status_code == 401, (where, r.status_code, r.text[:300])
    body = r.json()
    assert body["error"] in codes and body["message"] and set(body) <= {"error", "message", "fields"}, (where, body)


def test_every_operation_is_listed(app) -> None:  # type: ignore[no-untyped-def]
    ops = operations(app)
    assert len(ops) > 100 and ("POST", "/api/v1/bookings", b"{not json", "application/json") in ops


@pytest.mark.parametrize("with_csrf", [True, False])
def test_a_session_cookie_after_its_logout_is_401_on_every_operation(db, app, with_csrf: bool) -> None:  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    b.user(db, inst, "doctor", username="gonedoc")
    with TestClient(app, raise_server_exceptions=False) as browser:
        csrf = b.login(browser, "gonedoc")
        cookie = browser.cookies.get("ylt_session")
        assert browser.post("/api/v1/bookings", content=b"{not json", headers={
            "X-CSRF-Token": csrf, "content-type": "application/json"}).status_code == 422  # signed in: the body
        browser.post("/logout", data={"csrf_token": csrf})
    with TestClient(app, raise_server_exceptions=False) as thief:  # sends the captured cookie, keeps none
        for method, path, body, ctype in operations(app):
            headers = {"Cookie": f"ylt_session={cookie}", "Accept": "application/json"}
            if ctype:
                headers["content-type"] = ctype
            if with_csrf:
                headers["X-CSRF-Token"] = csrf
            r = thief.request(method, path, content=body, headers=headers)
            _unauthenticated(r, ("unauthenticated",), f"{method} {path}")


def test_a_revoked_token_is_401_on_every_operation(db, app) -> None:  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    doctor = b.user(db, inst, "doctor")
    admin = b.subject_for(db, b.user(db, None, "system_admin"))
    row, token = auth_service.issue_api_token(db, admin, doctor.id, inst.id, "HIS")
    auth_service.revoke_api_token(db, admin, row.id)
    db.flush()
    with TestClient(app, raise_server_exceptions=False) as his:
        for method, path, body, ctype in operations(app):
            headers = {"Authorization": f"Bearer {token}"}
            if ctype:
                headers["content-type"] = ctype
            r = his.request(method, path, content=body, headers=headers)
            _unauthenticated(r, ("bad_token", "unauthenticated"), f"{method} {path}")
