"""The batched read audits survive a kill -9 of the web process (issue 18 item 4; audit/batch.py's journal).

A real `yilianti serve` process answers shared-record reads on its PostgreSQL hot path; some reach the audit
log by the batch, then the audit table is locked so the next ones cannot, and the process is killed with
SIGKILL after answering them. The next start writes exactly the missing rows from the journal — and a journal
found again after its rows were written (a crash between the write and the file's removal) writes none twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests import builders as b
from tests.live import api_token, serving
from yilianti import db as dbmod
from yilianti.migrate import upgrade
from yilianti.models import AuditEvent

pytestmark = pytest.mark.skipif(os.environ.get("YILIANTI_TEST_BACKEND") != "postgresql",
                                reason="the batched read audit serves the PostgreSQL hot paths")


@pytest.fixture()
def world(test_db, tmp_path: Path):  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url)
    engine = dbmod.make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as db:
        inst = b.institution(db, "香河县人民医院")
        doctor = b.subject_for(db, b.user(db, inst, "doctor", username="journaldoc"), inst.id)
        patient = b.patient(db, doctor, "张三丰")
        token = api_token(db, doctor)
        db.commit()
    env = {k: v for k, v in os.environ.items() if k != "YILIANTI_TEST_DATABASE_URL"}
    env.update(YILIANTI_DATABASE_URL=url, YILIANTI_AUDIT_JOURNAL_DIR=str(tmp_path / "journal"),
               YILIANTI_AUDIT_FLUSH_SECONDS="0.2", YILIANTI_DB_LOCK_TIMEOUT_SECONDS="0.3",
               YILIANTI_RECORD_FAST_PATH="true", YILIANTI_WEB_PROCESSES="1")
    try:
        yield factory, env, token, patient.id, tmp_path / "journal"
    finally:
        engine.dispose()


def _audited(factory: sessionmaker[Session]) -> int:
    with factory() as db:
        return int(db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.username == "journaldoc", AuditEvent.resource_type == "shared_record")) or 0)


def _read(base: str, token: str, patient_id: int) -> None:
    r = httpx.get(f"{base}/api/v1/patients/{patient_id}/record", headers={"Authorization": f"Bearer {token}"},
                  timeout=30)
    assert r.status_code == 200, r.text


def test_reads_answered_before_a_kill_9_are_audited_exactly_once(world) -> None:  # type: ignore[no-untyped-def]
    factory, env, token, patient_id, journal = world
    with serving(env) as [(proc, base)]:
        for _ in range(5):
            _read(base, token, patient_id)
        deadline = time.monotonic() + 20
        while _audited(factory) < 5 and time.monotonic() < deadline:  # written by the batch (0.2 s here)
            time.sleep(0.1)
        assert _audited(factory) == 5
        with factory() as holder:  # the next batch cannot be written: the table is locked
            holder.execute(text("LOCK TABLE audit_event IN EXCLUSIVE MODE"))
            for _ in range(7):
                _read(base, token, patient_id)  # answered: the rows are in the journal
            files = list(journal.glob("*.jsonl"))
            assert len(files) == 1
            snapshot = journal.parent / "snapshot.jsonl"
            shutil.copy(files[0], snapshot)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            holder.rollback()
    assert _audited(factory) == 5  # the killed process wrote none of the last seven

    with serving(env):  # the start replays the dead process's journal before serving
        assert _audited(factory) == 12
        assert not list(journal.glob("*.jsonl"))
        with factory() as db:
            at = db.scalars(select(AuditEvent.at).where(AuditEvent.username == "journaldoc")
                            .order_by(AuditEvent.id.desc()).limit(7)).all()
            assert all(t.tzinfo is not None for t in at)  # the reads' own times, not the replay's

    shutil.copy(snapshot, journal / files[0].name)  # found again after its rows were written
    with serving(env):
        assert _audited(factory) == 12
        assert not list(journal.glob("*.jsonl"))


def test_a_clean_shutdown_leaves_no_journal(world) -> None:  # type: ignore[no-untyped-def]
    factory, env, token, patient_id, journal = world
    with serving(env) as [(_proc, base)]:
        for _ in range(3):
            _read(base, token, patient_id)
        assert len(list(journal.glob("*.jsonl"))) == 1
    assert _audited(factory) == 3 and not list(journal.glob("*.jsonl"))
    with factory() as db:
        assert db.execute(text("SELECT count(*) FROM audit_journal_mark")).scalar() == 0
