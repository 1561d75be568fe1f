"""Engine, sessions and the per-request unit of work."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from yilianti.config import Settings, get_settings, normalise_db_url

_engine: Engine | None = None
_factory: sessionmaker[Session] | None = None
# Request handlers run in a thread pool: without the lock, the first burst of requests each
# created an engine of its own (one worker was seen holding 52 PostgreSQL connections).
_init_lock = threading.Lock()


def make_engine(url: str, *, timeouts: bool = True, **kwargs: Any) -> Engine:
    """The engine for a database URL. On PostgreSQL every connection gets the statement and lock timeouts of
    the settings (a held lock answers 503 after a bounded wait; `timeouts=False` for migrations) and a
    connect timeout (an unreachable server answers 503, not a hang)."""
    url = normalise_db_url(url)
    if url.startswith("sqlite"):
        if ":///" in url and not url.endswith(":memory:"):
            from pathlib import Path

            Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _sqlite_setup(engine)
        return engine
    settings = get_settings()
    kwargs.setdefault("pool_size", settings.db_pool_size)
    kwargs.setdefault("max_overflow", settings.db_max_overflow)
    kwargs.setdefault("pool_timeout", settings.db_pool_timeout)
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = kwargs.setdefault("connect_args", {})
    connect_args.setdefault("connect_timeout", settings.db_connect_timeout_seconds)
    if timeouts:
        connect_args.setdefault("options", pg_timeout_options(settings))
    return create_engine(url, **kwargs)


def pg_timeouts(settings: Settings) -> dict[str, str]:
    """PostgreSQL's statement_timeout and lock_timeout of the settings (milliseconds; 0 = none), and JIT off:
    the access rule's hashed sub-plans make the planner's cost of a list over 100k readable patients look huge,
    and PostgreSQL then spent ~4.6 s compiling a 0.5 s count (B7, docs/benchmarks.md) — short OLTP queries never
    gain from JIT."""
    return {"statement_timeout": str(int(settings.db_statement_timeout_seconds * 1000)),
            "lock_timeout": str(int(settings.db_lock_timeout_seconds * 1000)), "jit": "off"}


def pg_timeout_options(settings: Settings) -> str:
    return " ".join(f"-c {name}={value}" for name, value in pg_timeouts(settings).items())


def _sqlite_setup(engine: Engine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE so that writers queue instead of racing.

    pysqlite's own transaction handling is switched off (isolation_level=None) and we
    emit BEGIN IMMEDIATE ourselves: one writer at a time, so a read-check-write in one
    transaction cannot be overtaken by another writer (no overbooking on SQLite).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def init_engine(settings: Settings | None = None) -> Engine:
    global _engine, _factory
    settings = settings or get_settings()
    _engine = make_engine(settings.database_url)
    _factory = sessionmaker(bind=_engine, expire_on_commit=False)
    return _engine


def _init_once() -> None:
    with _init_lock:
        if _factory is None:
            init_engine()


def get_engine() -> Engine:
    if _engine is None:
        _init_once()
    assert _engine is not None
    return _engine


def session_factory() -> sessionmaker[Session]:
    if _factory is None:
        _init_once()
    assert _factory is not None
    return _factory


def set_session_factory(factory: sessionmaker[Session], engine: Engine) -> None:
    """Used by tests to point the app at their own connection."""
    global _engine, _factory
    _engine, _factory = engine, factory


def get_db() -> Iterator[Session]:
    """FastAPI dependency: one unit of work per request, committed or rolled back here."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def ping(db: Session) -> str:
    """One round trip to the database (raises when it is unreachable); the dialect's name."""
    db.execute(text("SELECT 1"))
    return db.get_bind().dialect.name


def ready() -> str:
    """The database answers (raises when it does not): the dialect's name (GET /readyz)."""
    with session_factory()() as db:
        return ping(db)
