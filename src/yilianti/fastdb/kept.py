"""Answers kept per process for the hot paths: one cache, used by the subject lookup (fastdb/subject.py) and the
cockpit's figures (cockpit/fastpath.py).

An answer is kept for `ttl()` seconds. Once half of that has gone it is recomputed in the background while it
is still served, so requests do not queue behind the database under load; when it has expired, requests wait
for one shared computation — one per key at a time, so hundreds of requests arriving as an entry expires do
not each take a worker thread and a pooled connection to compute the same answer.

A computation that answers None, or raises, forgets the key (nobody keeps being served the old answer, say a
revoked token's subject); the exception goes to every request waiting for that computation. A background
refresh that fails is logged (an AppError, a refusal, is not worth a warning).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from yilianti.exceptions import AppError

T = TypeVar("T")
log = logging.getLogger("yilianti")
_background: set[asyncio.Future[Any]] = set()  # refreshes running, held so they are not collected mid-way


class Kept(Generic[T]):
    """Answers kept per key for `ttl()` seconds (at most `most` keys; when full, all are forgotten)."""

    def __init__(self, ttl: Callable[[], float], *, most: int = 5000) -> None:
        self.ttl = ttl
        self.most = most
        self.answers: dict[Any, tuple[float, float, T]] = {}  # key → (refresh after, expires at, answer)
        self.pending: dict[Any, asyncio.Future[T | None]] = {}

    def fresh(self, key: Any) -> T | None:
        """The kept answer while it has not expired (no computation, no refresh), or None."""
        hit = self.answers.get(key)
        return hit[2] if hit is not None and hit[1] > time.monotonic() else None

    async def get(self, key: Any, compute: Callable[[], Awaitable[T | None]]) -> T | None:
        """The kept answer (refreshed in the background after half its time), or the one computed now."""
        hit = self.answers.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            if hit[0] <= now and key not in self.pending:
                task = asyncio.ensure_future(self._compute(key, compute))
                _background.add(task)
                task.add_done_callback(_refreshed)
            return hit[2]
        return await self._compute(key, compute)

    async def _compute(self, key: Any, compute: Callable[[], Awaitable[T | None]]) -> T | None:
        pending = self.pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self.pending[key] = future
        try:
            answer = await compute()
            if answer is None:
                self.answers.pop(key, None)
            else:
                self.keep(key, answer)
            future.set_result(answer)
        except BaseException as exc:
            self.answers.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self.pending.pop(key, None)
        return answer

    def keep(self, key: Any, answer: T) -> T:
        ttl, now = self.ttl(), time.monotonic()
        if len(self.answers) >= self.most:
            self.answers.clear()
        self.answers[key] = (now + ttl / 2, now + ttl, answer)
        return answer

    def clear(self) -> None:
        self.answers.clear()


def _refreshed(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    exc = None if task.cancelled() else task.exception()
    if exc is not None and not isinstance(exc, AppError):
        log.warning("refreshing a kept answer failed: %r", exc)
