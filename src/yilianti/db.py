"""Engine, sessions and the per-request unit of work."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from yilianti.config import Settings, get_settings, normalise_db_url

_engine: Engine | None = None
_factory: sessionmaker[Session] | None = None
# Request handlers run in a thread pool: without the lock, the first burst of requests each
# created an engine of its own (one worker was seen holding 52 PostgreSQL connections).
_init_lock = threading.Lock()
_replica: Engine | None = None
_replica_state: tuple[float, float | None] = (0.0, None)  # (checked at, lag seconds or None: not usable)
REPLICA_CHECK_SECONDS = 5.0


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


def replica_engine() -> Engine | None:
    """The engine of YILIANTI_READ_REPLICA_URL (None when unset); its sessions say `yilianti-read` to PostgreSQL."""
    global _replica
    url = get_settings().read_replica_url
    if not url:
        return None
    with _init_lock:
        if _replica is None or _replica.url.render_as_string(hide_password=False) != make_engine_url(url):
            _replica = make_engine(url, connect_args={"application_name": "yilianti-read"})
    return _replica


def make_engine_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(normalise_db_url(url)).render_as_string(hide_password=False)


def replica_lag(engine: Engine) -> float | None:
    """How far the replica is behind (seconds; 0 when it has replayed all it received), None when it does not
    answer. Checked at most every REPLICA_CHECK_SECONDS per process."""
    global _replica_state
    checked, lag = _replica_state
    if time.monotonic() - checked < REPLICA_CHECK_SECONDS:
        return lag
    try:
        with engine.connect() as conn:
            lag = float(conn.scalar(text(
                "SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
                "THEN 0 ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END")) or 0)
    except Exception:  # noqa: BLE001 — an unreachable replica: the primary answers
        lag = None
    _replica_state = (time.monotonic(), lag)
    return lag


@contextmanager
def read_session(primary: Session) -> Iterator[Session]:
    """A session for a page's heavy reads: on the replica when one is set and within the staleness bound (its
    `info["replica_max_lag"]` says so, for the page's note), else the request's own session on the primary."""
    engine = replica_engine()
    if engine is None:
        yield primary
        return
    lag = replica_lag(engine)
    bound = get_settings().read_replica_max_lag_seconds
    if lag is None or lag > bound:
        yield primary
        return
    with Session(engine) as session:
        session.info["replica_max_lag"] = bound
        try:
            yield session
        finally:
            session.rollback()


def ping(db: Session) -> str:
    """One round trip to the database (raises when it is unreachable); the dialect's name."""
    db.execute(text("SELECT 1"))
    return db.get_bind().dialect.name


def ready() -> str:
    """The database answers (raises when it does not): the dialect's name (GET /readyz)."""
    with session_factory()() as db:
        return ping(db)
