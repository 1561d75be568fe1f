"""Read scaling for the lists (issue 22): with YILIANTI_READ_REPLICA_URL set, the heavy read-only lists —
referrals, bookings, diagnostic orders, patients, the audit log — run their queries on the replica's engine and
say how stale they may be, while the audit rows of those reads are written through the primary. The replica URL
here names the same PostgreSQL database (a second engine, as a streaming replica would be; the real replica is
tests/cockpit/test_read_replica.py); without a replica the same pages read the primary (every other test)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from tests import builders as b
from tests.conftest import BACKEND
from tests.referral.helpers import submitted_up
from tests.scheduling.helpers import world
from yilianti import db as dbmod
from yilianti.config import get_settings
from yilianti.migrate import upgrade
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling.schemas import BookingIn

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="read replicas are PostgreSQL's")

LISTS = ("/referrals?side=receiver&bucket=all", "/referrals?side=sender&bucket=all", "/scheduling/bookings",
         "/diagnostics/orders", "/patients", "/audit")


def test_lists_read_from_the_replica_and_write_their_audit_to_the_primary(test_db: Any) -> None:
    url = test_db.new_database_url()
    upgrade(url)
    primary = dbmod.make_engine(url)
    with Session(primary, expire_on_commit=False) as db:
        w = world(db, tag="副本")
        patient = b.patient(db, w.comm_doc, name="副本患者")
        booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patient.id))
        submitted_up(db, w, b.patient(db, w.comm_doc, name="副本转诊"))
        auditor = b.user(db, w.community, "auditor")
        db.commit()
        doctor, auditor_name = w.comm_doc.username, auditor.username
    settings = get_settings()
    saved = (settings.database_url, settings.read_replica_url, dbmod._engine, dbmod._factory, dbmod._replica,
             dbmod._replica_state)
    settings.database_url, settings.read_replica_url = url, url.replace("127.0.0.1", "localhost")
    dbmod.set_session_factory(sessionmaker(bind=primary, expire_on_commit=False), primary)
    dbmod._replica, dbmod._replica_state = None, (0.0, None)
    try:
        replica = dbmod.replica_engine()
        assert replica is not None and replica is not primary
        on_replica: list[str] = []
        on_primary: list[str] = []
        event.listen(replica, "before_cursor_execute", lambda _c, _cur, stmt, *_: on_replica.append(stmt))
        event.listen(primary, "before_cursor_execute", lambda _c, _cur, stmt, *_: on_primary.append(stmt))
        from yilianti.main import create_app

        with TestClient(create_app(run_jobs=False), raise_server_exceptions=False) as client:
            b.login(client, doctor)
            for path in LISTS[:-1]:
                on_replica.clear()
                page = client.get(path)
                assert page.status_code == 200, (path, page.text[-500:])
                assert 'id="replica-note"' in page.text and "30 秒" in page.text, path
                reads = [s for s in on_replica if s.lstrip().upper().startswith("SELECT")]
                assert reads, f"{path}: nothing read on the replica"
                assert not [s for s in on_replica if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
            shown = client.get("/patients").text + client.get("/scheduling/bookings").text
            assert "副本患者" in shown
            client.cookies.clear()
            b.login(client, auditor_name)
            on_replica.clear()
            on_primary.clear()
            page = client.get("/audit?q=")
            assert page.status_code == 200 and 'id="replica-note"' in page.text
            assert any("audit_event" in s for s in on_replica)  # the log read on the replica
            assert not [s for s in on_replica if s.lstrip().upper().startswith("INSERT")]
    finally:
        (settings.database_url, settings.read_replica_url, dbmod._engine, dbmod._factory, dbmod._replica,
         dbmod._replica_state) = saved
        primary.dispose()
