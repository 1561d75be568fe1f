"""Which failures mean "the database is not available now" — the classification, not the answer.

A database that refuses connections, is restarting, has no connection slot left, cancels a statement at
statement_timeout or a lock wait at lock_timeout, or a pool with no free connection: the client may retry
and nothing was written (the unit of work rolled back). Anything else unexpected is a bug.

The data layers use it (fastdb's pool closes such a connection instead of reusing it; group commit gives
the failure to every waiting item), and web/faults.py maps it to HTTP (503 with Retry-After). It lives
here, below both, so that the data layers need not import the web layer.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

_ASYNCPG = (asyncpg.PostgresConnectionError, asyncpg.exceptions.QueryCanceledError,
            asyncpg.exceptions.LockNotAvailableError, asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.TooManyConnectionsError, asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.CrashShutdownError, asyncpg.exceptions.InterfaceError,
            # asyncpg's own "cannot switch to state …; another operation is in progress": a statement sent on a
            # connection the server has just cut (its FATAL read, its close not yet) — each connection here has one
            # user at a time, so nothing else leaves it mid-operation
            asyncpg.exceptions.InternalClientError)


def pool_exhausted(exc: BaseException) -> bool:
    """True when only the ORM's connection pool had no free connection (the database itself may be fine)."""
    return isinstance(exc, sa_exc.TimeoutError)


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
