"""Shared pieces of the PostgreSQL hot paths (booking, referral moves, recognition lookup).

Hot endpoints are served by pure-ASGI routes before the framework stack, each as one prepared
statement on asyncpg (PERFORMANCE.md: hot endpoints async with a bounded pool). This module holds
what they share: one asyncpg pool per process and event loop, the cached resolution of the acting
subject (API token or cookie session), the worker-thread bridge to the ORM reference path, and the
503 answer when every connection stays busy. The reference implementations stay the ORM services
(the only path on SQLite).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio.to_thread
import asyncpg
from fastapi import Request
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yilianti import db as dbmod
from yilianti.auth.deps import _bearer, csrf_protect, resolve_subject
from yilianti.authz.subject import Subject
from yilianti.config import get_settings, normalise_db_url
from yilianti.exceptions import AppError, Forbidden, Unauthenticated, error_body
from yilianti.web.errors import render_error

T = TypeVar("T")
G = TypeVar("G", bound="GroupCommit[Any]")
_cache: dict[Any, tuple[float, Any]] = {}
_pending: dict[Any, asyncio.Future[Any]] = {}
_background: set[asyncio.Future[Any]] = set()
log = logging.getLogger("yilianti")
_pool: asyncpg.Pool | None = None
_pool_loop: asyncio.AbstractEventLoop | None = None
_pool_lock: asyncio.Lock | None = None


def on_postgresql() -> bool:
    return normalise_db_url(get_settings().database_url).startswith("postgresql")


async def pool() -> asyncpg.Pool:
    """One asyncpg pool per process (and event loop): a fixed number of connections, no churn."""
    global _pool, _pool_loop, _pool_lock
    loop = asyncio.get_running_loop()
    if _pool is not None and _pool_loop is loop:
        return _pool
    if _pool_lock is None or _pool_loop is not loop:
        if _pool is not None:  # left by another event loop (tests start several servers and event loops)
            _drop_foreign(_pool, _pool_loop)
            _pool = None
        _pool_lock, _pool_loop = asyncio.Lock(), loop
    async with _pool_lock:
        if _pool is None:
            s = get_settings()
            dsn = make_url(normalise_db_url(s.database_url)).set(drivername="postgresql")
            _pool = await asyncpg.create_pool(
                dsn.render_as_string(hide_password=False), min_size=1, max_size=s.booking_pool_size,
                max_inactive_connection_lifetime=1800, command_timeout=s.db_pool_timeout, reset=_keep_session,
                server_settings={"timezone": "UTC", "application_name": "yilianti-fast",
                                 # the prepared statement's generic plan is the right one; skip 5 custom plans
                                 "plan_cache_mode": "force_generic_plan"})
    assert _pool is not None
    return _pool


@contextlib.asynccontextmanager
async def connection() -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for one hot-path request. Raises Busy when every connection stays busy for
    db_pool_timeout (nothing has been written): FastRoute answers it with 503, as the ORM path does."""
    connections = await pool()
    try:
        conn = await connections.acquire(timeout=get_settings().db_pool_timeout)
    except TimeoutError:
        raise Busy() from None
    try:
        yield conn
    finally:
        await connections.release(conn)


async def fetchrow(statement: str, *params: Any) -> Any:
    """One row of one statement on a pooled connection (Busy as `connection`)."""
    async with connection() as conn:
        return await conn.fetchrow(statement, *params)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """On release asyncpg still rolls back an open transaction; its RESET ALL/UNLISTEN/CLOSE query,
    a round trip per booking, is not needed: these connections only run the hot paths' statements."""


async def dispose() -> None:
    global _pool, _pool_loop, _pool_lock
    if _pool is not None and _pool_loop is asyncio.get_running_loop():
        try:
            await asyncio.wait_for(_pool.close(), 5)
        except TimeoutError:
            _pool.terminate()
    elif _pool is not None:
        _drop_foreign(_pool, _pool_loop)
    _pool, _pool_loop, _pool_lock = None, None, None


def _drop_foreign(old: asyncpg.Pool, loop: asyncio.AbstractEventLoop | None) -> None:
    """Let go of a pool that belongs to another event loop. Its connections' transports are that loop's: they
    are aborted by that loop while it runs (another server's thread), and never touched once it is closed —
    aborting them from here crashed the process (uvloop) now and then."""
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(old.terminate)


def _cached(key: Any) -> Any:
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


def _remember(key: Any, value: Any, ttl: float) -> Any:
    if len(_cache) > 10000:
        _cache.clear()
    _cache[key] = (time.monotonic() + ttl, value)
    return value


def _sync(fn: Any, *args: Any) -> Any:
    """Run fn(db, *args) in a worker thread with its own unit of work."""

    def run() -> Any:
        with dbmod.session_factory()() as db:
            result = fn(db, *args)
            db.commit()
            return result

    return anyio.to_thread.run_sync(run)


async def _token_subject(request: Request, token: str) -> Subject | None:
    """The subject of an API token, cached for auth_cache_seconds (a revoked token stops within that).

    Under load the entry is refreshed in the background once half its time is gone, so requests
    never queue behind the lookup; when it has expired, requests wait for one shared lookup.
    """
    key = ("token", token)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        if hit[0] - now < get_settings().auth_cache_seconds / 2 and key not in _pending:
            task = asyncio.ensure_future(_resolve(key, request))
            _background.add(task)
            task.add_done_callback(_refreshed)
        subject: Subject | None = hit[1]
        return subject
    return await _resolve(key, request)


async def route_subject(scope: Scope, token: str) -> Subject | None:
    """The API token's subject for a FastRoute, or None when the regular route must answer (a token that
    does not resolve gets the route's own 401/403)."""
    try:
        return await _token_subject(Request(scope), token)
    except AppError:
        return None


def client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _refreshed(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    exc = None if task.cancelled() else task.exception()
    if exc is not None and not isinstance(exc, AppError):  # a revoked token is not worth a warning
        log.warning("refreshing an API token's subject failed: %r", exc)


async def _resolve(key: Any, request: Request) -> Subject | None:
    # one lookup per token at a time: when the entry expires under load, hundreds of requests
    # would otherwise each take a worker thread and a pooled connection to resolve the same token
    pending = _pending.get(key)
    if pending is not None:
        result: Subject | None = await asyncio.shield(pending)
        return result
    future: asyncio.Future[Subject | None] = asyncio.get_running_loop().create_future()
    _pending[key] = future
    try:
        subject = await _sync(resolve_subject, request)
        if subject is not None:
            _remember(key, subject, get_settings().auth_cache_seconds)
        future.set_result(subject)
    except BaseException as exc:
        _cache.pop(key, None)  # revoked or expired: nobody keeps using the old subject
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
        raise
    finally:
        _pending.pop(key, None)
    return subject


async def subject_of(request: Request) -> Subject:
    await csrf_protect(request)
    token = _bearer(request)
    if token:
        subject = await _token_subject(request, token)
    else:
        key = ("session", request.session.get("uid"), request.session.get("epoch"), request.session.get("inst"))
        subject = _cached(key)
        if subject is None:
            subject = await _sync(resolve_subject, request)
            if subject is not None:
                _remember(key, subject, get_settings().auth_cache_seconds)
    if subject is None:
        raise Unauthenticated()
    request.state.subject = subject
    if not subject.is_clinical:
        raise Forbidden("此功能仅限临床人员（医生、护士、诊断医师、转诊协调员）")
    return subject


class Busy(AppError):
    status, code, default_message = 503, "busy", "系统繁忙，请稍后重试"


@dataclass(eq=False)
class _Entry(Generic[T]):
    item: T
    done: asyncio.Future[Any]
    since: float


class GroupCommit(Generic[T]):
    """Group commit for one kind of hot-path write in one process: an item that arrives while `lanes`
    statements are at PostgreSQL waits for the next, which takes every waiting item (up to `most`,
    one per `key`) into one statement and one commit. With nothing in flight an item goes at once, alone.

    `execute` answers each item of a batch on its own (one answer per item, in order). A statement
    that fails as a whole writes nothing; its items are run again one by one, so each gets its own
    answer (`failed_alone` turns an item's own failure into its answer, or raises it to that item
    alone). An item that waited db_pool_timeout is answered Busy (503) unrun, as a request waiting
    that long for a pooled connection is."""

    most = 32

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        self.running = 0
        self.waiting: collections.deque[_Entry[T]] = collections.deque()
        self.tasks: set[asyncio.Task[None]] = set()

    def key(self, item: T) -> Any:
        raise NotImplementedError

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Called with the connection before each batch runs on it."""

    async def execute(self, conn: asyncpg.Connection, items: list[T]) -> list[Any]:
        raise NotImplementedError

    def failed_alone(self, item: T, exc: asyncpg.PostgresError) -> Any:
        raise exc

    async def submit(self, item: T, since: float | None = None) -> Any:
        entry = _Entry(item, asyncio.get_running_loop().create_future(),
                       time.monotonic() if since is None else since)
        self.waiting.append(entry)
        if self.running < self.lanes:
            self.running += 1
            task = asyncio.ensure_future(self._lane())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await entry.done

    def _next(self) -> list[_Entry[T]]:
        batch: list[_Entry[T]] = []
        keys: set[Any] = set()
        later: collections.deque[_Entry[T]] = collections.deque()
        too_old = time.monotonic() - get_settings().db_pool_timeout
        while self.waiting and len(batch) < self.most:
            entry = self.waiting.popleft()
            if entry.done.done():  # its request went away: nothing to do
                continue
            if entry.since < too_old:  # waited as long as for a pooled connection: 503, nothing written
                entry.done.set_exception(Busy())
                continue
            key = self.key(entry.item)
            if key in keys:
                later.append(entry)
            else:
                keys.add(key)
                batch.append(entry)
        later.extend(self.waiting)
        self.waiting = later
        return batch

    async def _lane(self) -> None:
        try:
            # `_next` right before the loop ends: no await between an empty queue and `running -= 1`, so an
            # item that arrives meanwhile either finds a lane still running or starts one
            while batch := self._next():
                try:
                    async with connection() as conn:  # Busy when every connection stays busy: nothing written, 503
                        await self.prepare(conn)
                        await self._run(conn, batch)
                except Exception as exc:  # Busy, a lost connection: the answer of the batch's items
                    for entry in batch:
                        if not entry.done.done():
                            entry.done.set_exception(exc)
                except BaseException:
                    for entry in batch:
                        entry.done.cancel()
                    raise
        finally:
            self.running -= 1

    async def _run(self, conn: asyncpg.Connection, batch: list[_Entry[T]]) -> None:
        pending = [batch]
        while pending:
            entries = pending.pop()
            try:
                answers = await self.execute(conn, [e.item for e in entries])
            except asyncpg.PostgresError as exc:
                if len(entries) > 1:  # which item failed (or met a concurrent one) is for each alone to say
                    pending.extend([e] for e in entries)
                    continue
                entry = entries[0]
                if not entry.done.done():
                    try:
                        entry.done.set_result(self.failed_alone(entry.item, exc))
                    except asyncpg.PostgresError as own:  # this item's own failure; the others still run
                        entry.done.set_exception(own)
                continue
            for entry, answer in zip(entries, answers, strict=True):
                if not entry.done.done():
                    entry.done.set_result(answer)


_groups: dict[type, tuple[asyncio.AbstractEventLoop, Any]] = {}


def group(kind: type[G]) -> G:
    """This process's (and event loop's) GroupCommit of that kind; each kind keeps at most half the hot-path
    pool (booking_pool_size) at PostgreSQL at once, so the other hot paths still find a connection."""
    loop = asyncio.get_running_loop()
    held = _groups.get(kind)
    if held is None or held[0] is not loop:
        held = _groups[kind] = (loop, kind(lanes=max(1, get_settings().booking_pool_size // 2)))
    instance: G = held[1]
    return instance


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
