"""Which failures mean "the database is not available now" (503 with Retry-After, never 500).

A database that refuses connections, is restarting, has no connection slot left, cancels a statement at
statement_timeout or a lock wait at lock_timeout, or a pool with no free connection: the client may retry
and nothing was written (the unit of work rolled back). Anything else unexpected is a 500.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

from yilianti.exceptions import AppError

RETRY_AFTER_SECONDS = 2


class Unavailable(AppError):
    status, code, default_message = 503, "unavailable", "系统暂时不可用，请稍后重试"


class BodyTooLarge(AppError):
    status, code, default_message = 413, "too_large", "请求内容过大"


_ASYNCPG = (asyncpg.PostgresConnectionError, asyncpg.exceptions.QueryCanceledError,
            asyncpg.exceptions.LockNotAvailableError, asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.TooManyConnectionsError, asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.CrashShutdownError, asyncpg.exceptions.InterfaceError,
            # asyncpg's own "cannot switch to state …; another operation is in progress": a statement sent on a
            # connection the server has just cut (its FATAL read, its close not yet) — each connection here has one
            # user at a time, so nothing else leaves it mid-operation
            asyncpg.exceptions.InternalClientError)


def fault_of(exc: BaseException) -> AppError | None:
    """The 503 answer of an unavailable database (`busy` when only the pool had no free connection), or None."""
    if isinstance(exc, sa_exc.TimeoutError):
        return AppError("系统繁忙，请稍后重试", code="busy", status=503)
    return Unavailable() if database_unavailable(exc) else None


def database_unavailable(exc: BaseException) -> bool:
    """True for the failures of an unavailable or overloaded database (see the module's docstring)."""
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        module = type(orig).__module__
        if module.startswith("psycopg"):
            import psycopg

            # psycopg's OperationalError covers refused and lost connections, QueryCanceled (statement_timeout),
            # LockNotAvailable (lock_timeout), TooManyConnections, AdminShutdown
            return isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError)
        if module.startswith("sqlite3"):
            text = str(orig)
            return "database is locked" in text or "unable to open database" in text
        return False
    if isinstance(exc, _ASYNCPG):
        return True
    # the hot paths' asyncpg pool: a refused or timed-out connect
    return isinstance(exc, ConnectionRefusedError | ConnectionResetError | TimeoutError)
