"""Faults: a database that refuses connections or holds a lock answers 503 with Retry-After (never a 500 or a
reset), /healthz stays a liveness answer, request bodies are bounded, an API request without credentials is a
401 before its body is read, and an unexpected error is a 500 that keeps the connection open."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select, text

from tests import builders as b
from tests.live import live_server
from yilianti import db as dbmod
from yilianti.config import get_settings
from yilianti.models.auth import User


def _contract(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["message"], body
    assert set(body) <= {"error", "message", "fields"}


def test_api_without_credentials_is_401_before_the_body(client) -> None:  # type: ignore[no-untyped-def]
    for method, path, payload in (("POST", "/api/v1/patients", b"{not json"),
                                  ("POST", "/api/v1/bookings", b'{"slot_id": "x"}'),
                                  ("GET", "/api/v1/patients", b""),
                                  ("POST", "/api/v1/referrals/1/transition", b"[]")):
        r = client.request(method, path, content=payload, headers={"content-type": "application/json"})
        _contract(r, 401, "unauthenticated")
    # a forged or expired session cookie is no credential either
    client.cookies.set("ylt_session", "eyJ1aWQiOiAxfQ==.forged.sig")
    _contract(client.post("/api/v1/patients", json={}), 401, "unauthenticated")


def test_request_body_is_bounded(db, client) -> None:  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    b.user(db, inst, "doctor", username="bigdoc")
    csrf = b.login(client, "bigdoc")
    limit = get_settings().request_max_bytes
    big = b'{"name": "' + b"x" * limit + b'"}'
    r = client.post("/api/v1/patients", content=big, headers={"X-CSRF-Token": csrf, "content-type": "application/json"})
    _contract(r, 413, "too_large")

    def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: counted as it arrives
        yield b'{"name": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    r = client.post("/api/v1/patients", content=chunks(), headers={"X-CSRF-Token": csrf,
                                                                    "content-type": "application/json"})
    _contract(r, 413, "too_large")
    assert client.get("/api/v1/patients").status_code == 200


def test_a_database_that_refuses_connections_answers_503(db, client) -> None:  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    b.user(db, inst, "doctor", username="downdoc")
    b.login(client, "downdoc")
    saved = (dbmod._engine, dbmod._factory)
    from sqlalchemy.orm import sessionmaker

    dead = dbmod.make_engine("postgresql://nobody@127.0.0.1:9/none")  # nothing listens on port 9
    dbmod.set_session_factory(sessionmaker(bind=dead), dead)
    try:
        for path in ("/api/v1/patients", "/api/v1/patients/1", "/readyz"):
            r = client.get(path)
            assert r.status_code == 503 and r.headers["retry-after"], (path, r.text)
            assert r.json().get("error", r.json().get("status")) == "unavailable"
        page = client.get("/patients")
        assert page.status_code == 503 and page.headers["retry-after"] and "稍后" in page.text
        assert client.get("/healthz").json() == {"status": "ok"}  # liveness: the process answers
    finally:
        dbmod._engine, dbmod._factory = saved
        dead.dispose()
    assert client.get("/readyz").json()["status"] == "ready"


def test_a_database_that_refuses_connections_is_503_on_every_operation_and_page(db, app) -> None:  # type: ignore[no-untyped-def]
    """Issue 18 item 4, "on every route": signed in, then the database goes away. Every /api/v1 operation (from
    the OpenAPI, so later routes are covered) and every page without a path parameter answers 503 with Retry-After —
    or, where it refuses the request before touching the database, its own 4xx (a page that needs none answers);
    never a 500 or a reset."""
    from fastapi.routing import APIRoute
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import sessionmaker

    from tests.auth.test_ended_credentials import operations

    inst = b.institution(db)
    b.user(db, inst, "doctor", username="everydoc")
    db.commit()
    pages = sorted({r.path for r in app.routes if isinstance(r, APIRoute) and "GET" in r.methods
                    and not r.path.startswith(("/api/", "/static")) and "{" not in r.path
                    and r.path not in ("/healthz", "/login", "/logout")})
    with TestClient(app, raise_server_exceptions=False) as client:
        csrf = b.login(client, "everydoc")
        saved = (dbmod._engine, dbmod._factory)
        dead = dbmod.make_engine("postgresql://nobody@127.0.0.1:9/none")  # nothing listens on port 9
        dbmod.set_session_factory(sessionmaker(bind=dead), dead)
        answers: dict[int, int] = {}
        try:
            for method, path, _bad, ctype in operations(app):
                headers = {"X-CSRF-Token": csrf, "Accept": "application/json"}
                if ctype:
                    headers["content-type"] = ctype
                body = b"{}" if ctype == "application/json" else b""
                r = client.request(method, path, content=body, headers=headers)
                answers[r.status_code] = answers.get(r.status_code, 0) + 1
                assert r.status_code == 503 or 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:300])
                if r.status_code == 503:
                    assert r.headers["retry-after"] and r.json()["error"] == "unavailable", (method, path, r.text)
            for path in pages:
                r = client.get(path)  # a page that needs no database (the API docs) still answers
                assert r.status_code == 503 or r.status_code < 500, (path, r.status_code, r.text[:300])
                assert r.status_code != 503 or (r.headers["retry-after"] and "稍后" in r.text), path
                answers[r.status_code] = answers.get(r.status_code, 0) + 1
        finally:
            dbmod._engine, dbmod._factory = saved
            dead.dispose()
    assert answers.get(503, 0) > 0.9 * sum(answers.values()), answers  # nearly all met the database


def test_unexpected_error_is_500_in_the_contract_and_keeps_the_connection(test_db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from yilianti.web import api

    def broken() -> str:
        raise RuntimeError("a bug")

    with live_server(test_db) as (base, _factory):
        monkeypatch.setattr(api, "ready", broken)
        split = urlsplit(base)
        conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
        conn.request("GET", "/readyz", headers={"Accept": "application/json"})
        failed = conn.getresponse()
        body = json.loads(failed.read())
        assert failed.status == 500 and body["error"] == "internal_error" and "Traceback" not in str(body)
        assert failed.getheader("connection") != "close"
        sock = conn.sock
        conn.request("GET", "/healthz")
        again = conn.getresponse()
        assert again.status == 200 and json.loads(again.read()) == {"status": "ok"}
        assert conn.sock is sock  # the same connection served the next request
        conn.close()


def test_a_held_lock_answers_503_after_a_bounded_wait(test_db) -> None:  # type: ignore[no-untyped-def]
    if test_db.backend != "postgresql":
        pytest.skip("lock_timeout is PostgreSQL's (SQLite waits busy_timeout for its one writer)")
    with live_server(test_db, db_lock_timeout_seconds=0.5) as (base, factory):
        with factory() as db:
            assert db.execute(text("SHOW lock_timeout")).scalar() == "500ms"
            inst = b.institution(db)
            b.user(db, inst, "doctor", username="lockdoc")
            db.commit()
        with httpx.Client(base_url=base, timeout=30) as browser:
            page = browser.get("/login")
            csrf = b._csrf(page.text)
            holder = factory()
            holder.execute(select(User).where(User.username == "lockdoc").with_for_update())  # held, not committed
            try:
                started = time.monotonic()
                r = browser.post("/login", data={"username": "lockdoc", "password": b.PASSWORD, "csrf_token": csrf},
                                 headers={"Accept": "application/json"})
                waited = time.monotonic() - started
            finally:
                holder.rollback()
                holder.close()
            assert r.status_code == 503 and r.headers["retry-after"], r.text
            assert waited < 5
            r = browser.post("/login", data={"username": "lockdoc", "password": b.PASSWORD, "csrf_token": csrf},
                             follow_redirects=False)
            assert r.status_code == 303  # the lock is gone: the same request succeeds
