"""The hot paths' common frame (fastdb.FastRoute): a request finding no free connection, or one the server cut,
is answered 503."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import httpx

from yilianti.fastdb.pool import Busy
from yilianti.fastdb.route import FastRoute
from yilianti.web.edge import Edge


class _NoConnection(FastRoute):
    """Serves GET /hot as a hot path whose `fastdb.connection()` found every connection busy."""

    method = "GET"
    stats: Counter[str] = Counter()

    def claim(self, scope: Any) -> Any:
        return True if scope["path"] == "/hot" else None

    async def serve(self, scope: Any, token: str, claimed: Any, body: bytes) -> None:
        raise Busy()

    def dump(self, out: dict[str, Any]) -> bytes:
        raise AssertionError("nothing to dump")


async def _app(scope: Any, receive: Any, send: Any) -> None:  # the framework stack: must not be reached
    raise AssertionError("a busy hot path fell through to the app")


def test_no_free_connection_answers_503_with_retry_after() -> None:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=_NoConnection(_app))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/hot", headers={"Authorization": "Bearer x", "Accept": "application/json"})

    r = asyncio.run(call())
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"] == "busy" and r.json()["message"]
    assert _NoConnection.stats["refused"] == 1


class _CutConnection(_NoConnection):
    """Serves GET /hot as a hot path whose pooled connection the server had cut just before (asyncpg read the
    FATAL but not yet the close): asyncpg refuses the statement with its own state error."""

    async def serve(self, scope: Any, token: str, claimed: Any, body: bytes) -> None:
        raise asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress")


def test_a_connection_the_server_just_cut_answers_503_not_500() -> None:
    """The fault burst's one 500 (tests/web/test_fault_burst.py): a database fault, so 503 with Retry-After."""
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=Edge(_CutConnection(_app)))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/hot", headers={"Authorization": "Bearer x", "Accept": "application/json"})

    r = asyncio.run(call())
    assert r.status_code == 503 and r.headers["retry-after"]
    assert r.json()["error"] == "unavailable"
