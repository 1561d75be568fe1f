"""Read scaling: with YILIANTI_READ_REPLICA_URL set, the cockpit's figures are read from a PostgreSQL streaming
replica (the page says its figures may lag, and by at most how much) while logging in and the audit go to the
primary. The test makes its own primary (initdb on a free loopback port, replication allowed by initdb's
trust pg_hba) and a replica of it with pg_basebackup, and sees the cockpit's queries run on the replica, which
is in recovery. PostgreSQL pass only; skipped with a notice when the PostgreSQL server tools are missing."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from tests import builders as b
from tests.conftest import BACKEND
from yilianti import db as dbmod
from yilianti.auth import service as auth_service
from yilianti.config import get_settings
from yilianti.migrate import upgrade

TOOLS = ("initdb", "pg_ctl", "pg_basebackup")
pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="read replicas are PostgreSQL's")


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


AS_POSTGRES: list[str] = []  # PostgreSQL's servers refuse to run as root: as the postgres user then


def _run(*args: str) -> None:
    done = subprocess.run([*AS_POSTGRES, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{args[0]}: {done.stdout}{done.stderr}"


def _appender():  # type: ignore[no-untyped-def]
    """Append to a file the postgres user owns (through `tee -a` when we are root)."""

    @contextmanager
    def append(path: Path) -> Iterator[io.StringIO]:
        buf = io.StringIO()
        yield buf
        subprocess.run([*AS_POSTGRES, "tee", "-a", str(path)], input=buf.getvalue(), text=True, check=True,
                       capture_output=True, timeout=30)

    return append


@pytest.fixture()
def cluster() -> Iterator[tuple[str, str]]:
    tools = {name: _tool(name) for name in TOOLS}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        pytest.skip(f"NOTICE: PostgreSQL server tools missing ({', '.join(missing)}): the replica test is skipped")
    tmp_path = Path(tempfile.mkdtemp(prefix="ylt-replica-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("NOTICE: running as root without runuser: the replica test is skipped")
        AS_POSTGRES[:] = ["runuser", "-u", "postgres", "--"]
        shutil.chown(tmp_path, "postgres", "postgres")
    primary, replica = tmp_path / "primary", tmp_path / "replica"
    p_port, r_port = _free_port(), _free_port()
    _run(str(tools["initdb"]), "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C")
    _append = _appender()
    with _append(primary / "postgresql.conf") as conf:
        conf.write(f"\nport = {p_port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{tmp_path}'\n"
                   "wal_level = replica\nmax_wal_senders = 4\nfsync = off\nsynchronous_commit = off\n"
                   "full_page_writes = off\nshared_buffers = 32MB\n")
    started: list[Path] = []
    try:
        _run(str(tools["pg_ctl"]), "-D", str(primary), "-l", str(tmp_path / "primary.log"), "-w", "start")
        started.append(primary)
        _run(str(tools["pg_basebackup"]), "-h", "127.0.0.1", "-p", str(p_port), "-U", "postgres", "-D", str(replica),
             "-R", "-X", "stream", "-c", "fast")
        with _append(replica / "postgresql.conf") as conf:
            conf.write(f"\nport = {r_port}\nhot_standby = on\n")
        _run(str(tools["pg_ctl"]), "-D", str(replica), "-l", str(tmp_path / "replica.log"), "-w", "start")
        started.append(replica)
        yield (f"postgresql://postgres@127.0.0.1:{p_port}/postgres",
               f"postgresql://postgres@127.0.0.1:{r_port}/postgres")
    finally:
        for data in reversed(started):
            subprocess.run([*AS_POSTGRES, str(tools["pg_ctl"]), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_cockpit_reads_from_the_replica_and_says_how_stale_it_may_be(cluster) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    primary_url, replica_url = cluster
    upgrade(primary_url)
    primary = dbmod.make_engine(primary_url)
    with Session(primary) as db:
        lead = b.institution(db, "沙县区总医院", level=3)
        town = b.institution(db, "沙县区总医院高桥分院", kind="township", level=1)
        alliance = b.alliance(db, (lead, "lead"), (town, "member"), name="沙县区医共体")
        auth_service.create_user(db, None, "replicaadmin", b.PASSWORD, "联盟管理员",
                                 [("alliance_admin", None, alliance.id)])
        db.commit()
        aid = alliance.id
    settings = get_settings()
    saved = (settings.database_url, settings.read_replica_url, dbmod._engine, dbmod._factory, dbmod._replica,
             dbmod._replica_state)
    settings.database_url, settings.read_replica_url = primary_url, replica_url
    dbmod.set_session_factory(sessionmaker(bind=primary, expire_on_commit=False), primary)
    dbmod._replica, dbmod._replica_state = None, (0.0, None)
    try:
        replica = dbmod.replica_engine()
        assert replica is not None
        deadline = time.monotonic() + 30
        while True:  # the replica has replayed the schema (until then: no such table) and the alliance
            with replica.connect() as conn:
                replayed = conn.scalar(text("SELECT to_regclass('alliance') IS NOT NULL"))
                if replayed and conn.scalar(text("SELECT count(*) FROM alliance WHERE id = :a"), {"a": aid}):
                    assert conn.scalar(text("SELECT pg_is_in_recovery()")) is True
                    break
            assert time.monotonic() < deadline, "the replica did not catch up in 30 s"
            time.sleep(0.2)
        on_replica: list[str] = []
        event.listen(replica, "before_cursor_execute",
                     lambda _c, _cur, statement, *_: on_replica.append(statement))
        from yilianti.main import create_app

        with TestClient(create_app(run_jobs=False), raise_server_exceptions=False) as client:
            b.login(client, "replicaadmin")
            assert not on_replica, "logging in is the primary's"
            page = client.get(f"/cockpit?alliance_id={aid}&start=2026-01&end=2026-03")
        assert page.status_code == 200, page.text
        assert 'id="replica-note"' in page.text and "最多 30 秒" in page.text
        assert any(s.lstrip().upper().startswith("SELECT") for s in on_replica), on_replica  # the figures' reads
        with replica.connect() as conn:
            assert conn.scalar(text("SELECT pg_is_in_recovery()")) is True
        # a replica that does not answer: the primary serves the page, without the note
        settings.read_replica_url = replica_url.replace(replica_url.rsplit(":", 1)[1].split("/")[0], str(_free_port()))
        dbmod._replica, dbmod._replica_state = None, (0.0, None)
        with TestClient(create_app(run_jobs=False), raise_server_exceptions=False) as client:
            b.login(client, "replicaadmin")
            page = client.get(f"/cockpit?alliance_id={aid}")
        assert page.status_code == 200 and 'id="replica-note"' not in page.text
    finally:
        (settings.database_url, settings.read_replica_url, dbmod._engine, dbmod._factory, dbmod._replica,
         dbmod._replica_state) = saved
        primary.dispose()
    assert time.monotonic() - started < 90
