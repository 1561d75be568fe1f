"""The outer web layer: security headers on every response, and pages without inline script."""

from __future__ import annotations

import re
from pathlib import Path

from tests import builders as b

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "yilianti" / "web" / "templates"


def test_templates_have_no_inline_script_or_event_handler() -> None:
    """The CSP allows scripts from /static only: an inline <script> or onclick= would silently stop working."""
    found = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and 'type="application/json"' not in tag:
                found.append(f"{path.name}: {tag}")
        found += [f"{path.name}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text)]
        found += [f"{path.name}: {m}" for m in re.findall(r"javascript:", text, re.I)]
    assert found == []


def _assert_secured(response, *, no_store: bool = True) -> None:  # type: ignore[no-untyped-def]
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline'; img" not in csp.split("script-src")[1][:30]
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    if no_store:
        assert response.headers["cache-control"] == "no-store"


def test_security_headers_on_pages_api_errors_and_static(db, client) -> None:  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    b.user(db, inst, "doctor", username="hdrdoc")
    _assert_secured(client.get("/login"))
    _assert_secured(client.get("/api/v1/patients"))  # 401 without credentials
    b.login(client, "hdrdoc")
    _assert_secured(client.get("/"))
    _assert_secured(client.get("/patients"))
    _assert_secured(client.get("/api/v1/patients"))
    _assert_secured(client.get("/api/v1/patients/999999"))  # 404
    static = client.get("/static/js/app.js")
    assert static.status_code == 200
    _assert_secured(static, no_store=False)
    assert "no-store" not in static.headers.get("cache-control", "")


def test_api_docs_keep_working_under_their_own_policy(client) -> None:  # type: ignore[no-untyped-def]
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert "script-src 'self' 'unsafe-inline'" in docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"
