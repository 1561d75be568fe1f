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


def make_engine(url: str, **kwargs: Any) -> Engine:
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
    return create_engine(url, **kwargs)


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
