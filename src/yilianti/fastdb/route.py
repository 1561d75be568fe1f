"""The hot paths' common frame: a pure-ASGI route served before the framework stack, and the
worker-thread bridge to the ORM reference path (the only path on SQLite)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio.to_thread
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yilianti import db as dbmod
from yilianti.exceptions import AppError, error_body
from yilianti.fastdb.pool import Busy
from yilianti.web.errors import render_error


def _sync(fn: Any, *args: Any) -> Any:
    """Run fn(db, *args) in a worker thread with its own unit of work."""

    def run() -> Any:
        with dbmod.session_factory()() as db:
            result = fn(db, *args)
            db.commit()
            return result

    return anyio.to_thread.run_sync(run)


class FastRoute:
    """A pure-ASGI route served before the framework stack (the hot paths' common frame).

    A subclass says which requests it may take (`claim`), serves them (`serve`: the answer, an
    AppError rendered as the app's handler renders it, or None) and serialises the answer (`dump`).
    Requests without a bearer token, and every None, go to the app unchanged with the body replayed,
    so errors, cookie sessions and OpenAPI stay the regular route's.
    """

    MAX_BODY = 16 * 1024
    method = "POST"
    ok_status = 200
    count_fallback = True  # False when the regular route counts its own fallbacks
    stats: Counter[str]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def claim(self, scope: Scope) -> Any:
        """What `serve` needs from the path (not None) when this route may take the request."""
        raise NotImplementedError

    async def serve(self, scope: Scope, token: str, claimed: Any, body: bytes) -> dict[str, Any] | AppError | None:
        raise NotImplementedError

    def dump(self, out: dict[str, Any]) -> bytes:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        claimed = None
        if scope["type"] == "http" and scope["method"] == self.method:
            claimed = self.claim(scope)
        token = bearer(scope) if claimed is not None else None
        if not token:
            await self.app(scope, receive, send)
            return
        body, more = b"", False
        if self.method == "POST":
            chunks: list[bytes] = []
            size, more = 0, True
            while more and size <= self.MAX_BODY:
                message = await receive()
                if message["type"] != "http.request":  # disconnected
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
            body = b"".join(chunks)
        try:
            out = None if more else await self.serve(scope, token, claimed, body)
        except Busy as busy:  # no connection came free (fastdb.connection): 503, nothing written
            out = busy
        if isinstance(out, AppError):
            self.stats["refused"] += 1
            request = Request(scope)  # rendered as the app's handler renders it (JSON, Accept-Language)
            response = render_error(request, out.status, error_body(request, out.code, out.message, out.fields,
                                                                    out.params))
            if isinstance(out, Busy):
                response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        if out is not None:
            self.stats["statement"] += 1
            payload = self.dump(out)
            await send({"type": "http.response.start", "status": self.ok_status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        if self.count_fallback:
            self.stats["fallback"] += 1
        replayed = self.method != "POST"

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)


def bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            if value[:7].lower() == b"bearer ":
                return value[7:].decode("latin-1").strip() or None
            break
    return None
