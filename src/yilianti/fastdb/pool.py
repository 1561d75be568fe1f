"""The hot paths' asyncpg pool: one per process and event loop, a fixed number of connections.

Hot endpoints are served by pure-ASGI routes before the framework stack, each as one prepared
statement on asyncpg (PERFORMANCE.md: hot endpoints async with a bounded pool). A request that finds
every connection busy for db_pool_timeout gets Busy (503), as on the ORM path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from yilianti.config import get_settings, normalise_db_url
from yilianti.db import pg_timeouts
from yilianti.exceptions import AppError
from yilianti.kit.dbfaults import database_unavailable

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
                                 "plan_cache_mode": "force_generic_plan", **pg_timeouts(s)},
                timeout=s.db_connect_timeout_seconds)
    assert _pool is not None
    return _pool


@contextlib.asynccontextmanager
async def connection() -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for one hot-path request. Raises Busy when every connection stays busy for
    db_pool_timeout (nothing has been written): FastRoute answers it with 503, as the ORM path does. A connection
    whose use failed with the database's failure rather than a statement's own (a unique violation, say) is
    closed, not reused."""
    connections = await pool()
    try:
        conn = await connections.acquire(timeout=get_settings().db_pool_timeout)
    except TimeoutError:
        raise Busy() from None
    try:
        yield conn
    except BaseException as exc:
        if database_unavailable(exc):
            # the connection may be cut by the server, half-read or mid-operation (a FATAL, a timeout, asyncpg's own
            # state error): closed instead of handed to the next request; the pool opens a new one
            with contextlib.suppress(asyncpg.InterfaceError):  # one the server closed is already given back
                conn.terminate()
        raise
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


class Busy(AppError):
    status, code, default_message = 503, "busy", "系统繁忙，请稍后重试"
