"""Test harness.

The schema is built by running the migrations, once per test session, in a database of
its own: a temporary SQLite file by default, or (YILIANTI_TEST_BACKEND=postgresql) a fresh
database created on the server named by YILIANTI_TEST_DATABASE_URL and dropped afterwards.
Each test runs inside a transaction that is rolled back; the app under test shares it
(its commits become savepoints).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# a var dir of our own per process: pytest-xdist workers inherit the controller's environment, so the
# marker says "made by this harness" and each worker makes its own (a var dir given by the caller is kept)
if "YILIANTI_VAR_DIR" not in os.environ or os.environ.get("YLT_TEST_OWN_VAR_DIR"):
    os.environ["YILIANTI_VAR_DIR"] = tempfile.mkdtemp(prefix="ylt-var-")
    os.environ["YLT_TEST_OWN_VAR_DIR"] = "1"
os.environ.setdefault("YILIANTI_SECRET_KEY", "test-secret-key")
os.environ["YILIANTI_RUN_JOBS_IN_PROCESS"] = "false"
# tests share one connection and roll back; the async booking path has its own test with real commits
os.environ["YILIANTI_BOOKING_FAST_PATH"] = "false"
os.environ["YILIANTI_AUTH_CACHE_SECONDS"] = "0"
# argon2 at its lowest cost: the standard one takes about a second per hash here, and the demo hashes
# a password per user (auth/security.py; production refuses this setting)
os.environ["YILIANTI_PASSWORD_HASH_COST"] = "minimal"

import functools  # noqa: E402

import httpx  # noqa: E402

from yilianti import db as dbmod  # noqa: E402
from yilianti.config import normalise_db_url  # noqa: E402
from yilianti.migrate import upgrade  # noqa: E402

# Property tests judge correctness, not speed: a machine busy with the other workers must not fail them on
# Hypothesis's timing checks (speed lives in bench/).
settings.register_profile("yilianti", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("yilianti")

BACKEND = os.environ.get("YILIANTI_TEST_BACKEND", "sqlite")


def _patient(call):  # type: ignore[no-untyped-def]
    """httpx's module-level calls wait 30 s, not 5, for a live test server: on a loaded 2-core machine (xdist
    workers, a first request that prepares the hot paths' statements) 5 s timed out now and then."""

    @functools.wraps(call)
    def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("timeout", 30.0)
        return call(*args, **kwargs)

    return wrapped


for _name in ("request", "get", "post", "put", "patch", "delete"):
    setattr(httpx, _name, _patient(getattr(httpx, _name)))


def _pg_admin_url() -> str:
    url = os.environ.get("YILIANTI_TEST_DATABASE_URL")
    if not url:
        pytest.exit("YILIANTI_TEST_BACKEND=postgresql needs YILIANTI_TEST_DATABASE_URL", returncode=2)
    return normalise_db_url(url)


class TestDatabase:
    """A database of our own for this test session."""

    def __init__(self) -> None:
        self.backend = BACKEND
        if BACKEND == "postgresql":
            admin_url = _pg_admin_url()
            self.name = f"ylt_test_{os.getpid()}_{secrets.token_hex(3)}"
            self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
            with self._admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)
        else:
            self._dir = tempfile.mkdtemp(prefix="ylt-db-")
            self.url = f"sqlite:///{self._dir}/test.db"
        self.engine: Engine = dbmod.make_engine(self.url)

    def new_database_url(self) -> str:
        """Another empty database (for tests that commit for real, e.g. a live server)."""
        if self.backend == "postgresql":
            name = f"ylt_test_{os.getpid()}_{secrets.token_hex(3)}"
            with self._admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            self._extra = [*getattr(self, "_extra", []), name]
            return make_url(self.url).set(database=name).render_as_string(hide_password=False)
        return f"sqlite:///{tempfile.mkdtemp(prefix='ylt-db-')}/live.db"

    def drop(self) -> None:
        self.engine.dispose()
        if self.backend == "postgresql":
            with self._admin.connect() as conn:
                for name in [self.name, *getattr(self, "_extra", [])]:
                    if re.fullmatch(r"ylt_test_\w+", name):
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            self._admin.dispose()


@pytest.fixture(scope="session")
def test_db() -> Iterator[TestDatabase]:
    database = TestDatabase()
    with database.engine.connect() as conn:
        upgrade(connection=conn)
        conn.commit()
    yield database
    database.drop()


@pytest.fixture
def db(test_db: TestDatabase) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    connection = test_db.engine.connect()
    outer = connection.begin()
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    previous = (dbmod._engine, dbmod._factory)
    dbmod.set_session_factory(factory, test_db.engine)
    session = factory()
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()
        dbmod._engine, dbmod._factory = previous


@pytest.fixture
def app(db: Session):  # type: ignore[no-untyped-def]
    from yilianti.main import create_app

    return create_app(run_jobs=False)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# pytest-xdist (`make test`: --dist loadscope): every module is a unit of work given whole to one worker, so
# its module-scoped fixtures are built once. These packages share a package-scoped fixture (tests/demo: one
# demo load for all its modules): each goes to one worker as a single unit, or the load would be repeated
# whenever the worker switched modules.
ONE_UNIT_PACKAGES = ("tests/demo/",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):  # type: ignore[no-untyped-def]
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class PackageUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for package in ONE_UNIT_PACKAGES:
                if nodeid.startswith(package):
                    return package
            return super()._split_scope(nodeid)

    return PackageUnits(config, log)


def pytest_report_header(config):  # type: ignore[no-untyped-def]
    return f"yilianti test backend: {BACKEND}"


ROOT = Path(__file__).resolve().parent.parent
