"""`yilianti archive` (issue 22): closed months older than the retention leave the live tables for the archive
schema — no row copied or changed — while the audit chain still verifies over them, archived audit rows stay
append-only, a month holding open work (a failed outbox row, a quarantined HL7 message) stays live, and an
auditor's request brings an archived month back (`--restore`), its rows on the audit page again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests import builders as b
from tests.archive import test_partitions
from tests.archive.test_partitions import _audit_rows, _cli, _count
from tests.conftest import BACKEND
from yilianti import db as dbmod
from yilianti.archive import repository as repo
from yilianti.audit import chain
from yilianti.config import get_settings
from yilianti.migrate import upgrade

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="monthly partitions are PostgreSQL's")

fresh = test_partitions.fresh  # the fixture: an empty database of its own, the audit head in tmp_path
NOW = datetime.now(UTC)
JAN, FEB = datetime(2024, 1, 15, 8, tzinfo=UTC), datetime(2024, 2, 10, 9, tzinfo=UTC)


def test_old_closed_months_move_to_the_archive_and_come_back_on_request(fresh) -> None:  # type: ignore[no-untyped-def]
    url, engine = fresh
    upgrade(url)
    _audit_rows(engine, [JAN, JAN, FEB, NOW - timedelta(days=1)])
    with engine.begin() as conn:
        for at, status in ((JAN, "done"), (FEB, "failed"), (NOW, "done")):
            conn.execute(text("INSERT INTO outbox (topic, payload, status, available_at, attempts, created_at) "
                              "VALUES ('notify', '{}', :s, :at, 0, :at)"), {"at": at, "s": status})
        conn.execute(text("INSERT INTO inbound_message (channel, received_at, status, raw, created_at) "
                          "VALUES ('hl7', :at, 'quarantined', 'MSH|', :at)"), {"at": JAN})
    assert _cli("partitions")[0] == 0  # the back-dated rows into their months
    chain.seal_all(sessionmaker(bind=engine, expire_on_commit=False))
    assert _count(engine, "SELECT count(*) FROM audit_event") == 4

    code, out = _cli("archive", "--months", "12")
    assert code == 0, out
    assert "audit_event_p202401" in out and "audit_event_p202402" in out and "outbox_p202401" in out
    assert "kept live" in out and "outbox_p202402" in out.split("kept live")[1]  # its failed row waits
    assert "inbound_message_p202401" in out.split("kept live")[1]  # a quarantined message waits for a person
    assert _count(engine, "SELECT count(*) FROM audit_event") == 1  # the live log: this month's row only
    assert _count(engine, f"SELECT count(*) FROM {repo.ARCHIVE}.audit_event") == 3
    assert _count(engine, "SELECT count(*) FROM outbox") == 2 and _count(engine, "SELECT count(*) FROM inbound_message") == 1
    code, out = _cli("audit", "verify")
    assert code == 0 and "4 rows sealed" in out and "OK" in out, out  # archived rows still in the chain
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text(f"UPDATE {repo.ARCHIVE}.audit_event SET reason = '改' WHERE resource_id = '0'"))
    assert _cli("archive", "--list")[1].splitlines()[0] == "audit_event: 2024-01, 2024-02"
    assert "0 month partition(s)" in _cli("archive", "--months", "12")[1]  # again: nothing more to move

    # an auditor searches the archived months on request; January 2024 brought back shows without asking
    settings = get_settings()
    saved = (dbmod._engine, dbmod._factory)
    dbmod.set_session_factory(sessionmaker(bind=engine, expire_on_commit=False), engine)
    try:
        with Session(engine) as db:
            auditor = b.user(db, None, "auditor")
            db.commit()
            name = auditor.username
        from yilianti.main import create_app

        january = "/audit?from=2024-01-01&to=2024-01-31"
        with TestClient(create_app(run_jobs=False), raise_server_exceptions=False) as client:
            b.login(client, name)
            live = client.get(january)
            assert live.status_code == 200 and "doctor1" not in live.text
            asked = client.get(january + "&archived=1")
            assert asked.status_code == 200 and asked.text.count(">doctor1<") == 2, asked.text[-800:]
            assert 'id="f-archived"' in asked.text and "checked" in asked.text.split('id="f-archived"')[1][:20]
            code, out = _cli("archive", "--restore", "2024-01")
            assert code == 0 and "audit_event_p202401" in out and "outbox_p202401" in out, out
            assert _count(engine, "SELECT count(*) FROM audit_event WHERE at < '2024-02-01'") == 2
            again = client.get(january)
            assert again.status_code == 200 and again.text.count(">doctor1<") == 2
    finally:
        dbmod._engine, dbmod._factory = saved
    assert settings.database_url == url
    assert _cli("audit", "verify")[0] == 0
