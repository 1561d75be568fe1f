"""Bound the requests in flight per process to what the database pool can serve.

Synchronous endpoints hop between threads (dependencies, then the endpoint) while their
session keeps its database connection. Without a bound, new requests take every worker
thread and block waiting for a pooled connection, while requests that already hold one
wait for a thread: nothing moves until the pool times out. Requests beyond the bound wait
here, asynchronously, holding neither a thread nor a connection.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send


class InflightLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._sem: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/static/"):
            await self.app(scope, receive, send)
            return
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limit)
        async with self._sem:
            await self.app(scope, receive, send)
