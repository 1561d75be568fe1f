"""The tables that grow for years are partitioned by month on PostgreSQL (migration 0031): the migration keeps
every row and the audit hash chain verifying, later months are made ahead by the periodic job, rows that landed
in the default partition move into their months, the retention removes old handled HL7 messages and delivered
outbox rows (never the audit log), and a date-bounded audit query reads only its months (partition pruning).
SQLite keeps its tables whole: these tests run on the PostgreSQL pass only."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import BACKEND
from yilianti import cli
from yilianti import db as dbmod
from yilianti.archive import repository as repo
from yilianti.archive import service
from yilianti.audit import chain
from yilianti.config import get_settings
from yilianti.migrate import upgrade
from yilianti.models import AuditEvent
from yilianti.models.outbox import OutboxMessage
from yilianti.worker import outbox

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="monthly partitions are PostgreSQL's; SQLite "
                                                                 "keeps its tables whole")

NOW = datetime.now(UTC)
OLD = [datetime(2024, 1, 15, 8, tzinfo=UTC), datetime(2025, 6, 30, 23, 59, tzinfo=UTC), NOW - timedelta(days=1)]


@pytest.fixture()
def fresh(test_db, tmp_path: Path) -> Iterator[tuple[str, Engine]]:  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    settings = get_settings()
    saved = (settings.database_url, settings.audit_head, settings.outbox_retention_days, settings.hl7_retention_days)
    settings.database_url, settings.audit_head = url, str(tmp_path / "audit-head.log")
    engine = dbmod.make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        (settings.database_url, settings.audit_head, settings.outbox_retention_days,
         settings.hl7_retention_days) = saved


def _audit_rows(engine: Engine, times: list[datetime]) -> None:
    with Session(engine) as db:
        for i, at in enumerate(times):
            db.add(AuditEvent(at=at, action="read", resource_type="patient", resource_id=str(i), patient_id=7,
                              username="doctor1", reason="复诊", detail={"n": i}))
        db.commit()


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(list(args))
    return code, out.getvalue()


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text(sql)) or 0)


def test_the_migration_keeps_every_row_and_the_audit_chain_verifies(fresh) -> None:  # type: ignore[no-untyped-def]
    url, engine = fresh
    upgrade(url, revision="0030")
    _audit_rows(engine, OLD * 3)
    with engine.begin() as conn:
        for i, at in enumerate(OLD):
            conn.execute(text("INSERT INTO outbox (topic, payload, status, available_at, attempts, dedupe_key, "
                              "created_at) VALUES ('notify', '{}', 'done', :at, 0, :k, :at)"), {"at": at, "k": f"k{i}"})
            conn.execute(text("INSERT INTO inbound_message (channel, received_at, status, raw, created_at) "
                              "VALUES ('hl7', :at, 'stored', 'MSH|^~\\&|', :at)"), {"at": at})
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    chain.seal_all(factory)
    before = {t: _count(engine, f"SELECT count(*) FROM {t}") for t in repo.PARTITIONED}
    upgrade(url)

    with engine.connect() as conn:
        for tbl in repo.PARTITIONED:
            assert repo.is_partitioned(conn, tbl), tbl
            assert _count(engine, f"SELECT count(*) FROM {tbl}") == before[tbl]
            assert {m.strftime("%Y-%m") for m in repo.months(conn, tbl)} >= {"2024-01", "2025-06", NOW.strftime("%Y-%m")}
            assert _count(engine, f"SELECT count(*) FROM {tbl}_pdefault") == 0
        assert _count(engine, "SELECT count(*) FROM audit_event_p202401") == 3
    code, out = _cli("audit", "verify")
    assert code == 0 and "9 rows sealed" in out and "OK" in out, out
    # the audit log stays append-only, and new rows go on being sealed
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE resource_id = '0'"))
    _audit_rows(engine, [NOW])
    chain.seal_all(factory)
    assert _cli("audit", "verify")[0] == 0
    # a used de-duplication key still refuses a second message, and new ids follow the old ones
    with Session(engine) as db:
        assert outbox.enqueue(db, "notify", {"title": "x"}, dedupe_key="k1") is None
        msg = outbox.enqueue(db, "notify", {"title": "y"}, dedupe_key="fresh")
        db.commit()
        assert msg is not None and msg.id > 3
    with pytest.raises(Exception, match="outbox_key"), engine.begin() as conn:
        conn.execute(text("INSERT INTO outbox (topic, payload, status, available_at, attempts, dedupe_key, "
                          "created_at) VALUES ('notify', '{}', 'pending', now(), 0, 'k0', now())"))


def test_months_ahead_are_made_and_default_rows_move_into_their_months(fresh) -> None:  # type: ignore[no-untyped-def]
    url, engine = fresh
    upgrade(url)
    _audit_rows(engine, [datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 31, 16, tzinfo=UTC)])  # back-dated
    assert _count(engine, "SELECT count(*) FROM audit_event_pdefault") == 2
    chain.seal_all(sessionmaker(bind=engine, expire_on_commit=False))
    code, out = _cli("partitions")
    assert code == 0, out
    ahead = get_settings().partition_months_ahead
    with engine.connect() as conn:
        months = repo.months(conn, "outbox")
        assert months[-1] >= repo.month_start((NOW + timedelta(days=31 * ahead - 31)).date())
        assert repo.month_start(datetime(2023, 3, 1).date()) in repo.months(conn, "audit_event")
    assert _count(engine, "SELECT count(*) FROM audit_event_pdefault") == 0
    assert _count(engine, "SELECT count(*) FROM audit_event_p202303") == 2
    assert _cli("audit", "verify")[0] == 0
    assert _cli("partitions")[0] == 0  # again: nothing to do, nothing broken


def test_outbox_rows_with_a_dedupe_key_move_out_of_the_default_and_their_key_still_holds(fresh) -> None:  # type: ignore[no-untyped-def]
    """The demo's back-dated outbox rows (a chronic alarm's reminder, with its dedupe key) sit in the default
    partition until the first `partitions` run moves them: moving a row is not enqueuing it again, so its key,
    already in outbox_key, must not stop the move (`yilianti load-demo` failed on PostgreSQL) — and still dedupes."""
    url, engine = fresh
    upgrade(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO outbox (topic, payload, status, available_at, attempts, dedupe_key, "
                          "created_at) VALUES ('notify', '{}', 'done', :at, 1, 'moved-key', :at)"),
                     {"at": datetime(2023, 5, 2, tzinfo=UTC)})
    assert _count(engine, "SELECT count(*) FROM outbox_pdefault") == 1
    code, out = _cli("partitions")
    assert code == 0, out
    assert _count(engine, "SELECT count(*) FROM outbox_pdefault") == 0
    assert _count(engine, "SELECT count(*) FROM outbox_p202305 WHERE dedupe_key = 'moved-key'") == 1
    with Session(engine) as db:
        assert outbox.enqueue(db, "notify", {"title": "again"}, dedupe_key="moved-key") is None  # still a duplicate


def test_retention_removes_old_delivered_outbox_rows_and_handled_hl7_but_keeps_what_waits(fresh) -> None:  # type: ignore[no-untyped-def]
    url, engine = fresh
    upgrade(url)
    old, recent = datetime(2024, 2, 10, tzinfo=UTC), NOW - timedelta(days=2)
    with engine.begin() as conn:
        for at, status in ((old, "done"), (old, "done"), (recent, "done"), (old, "failed")):
            conn.execute(text("INSERT INTO outbox (topic, payload, status, available_at, attempts, created_at) "
                              "VALUES ('notify', '{}', :s, :at, 0, :at)"), {"at": at, "s": status})
        for at, status in ((old, "stored"), (old, "quarantined"), (recent, "stored")):
            conn.execute(text("INSERT INTO inbound_message (channel, received_at, status, raw, created_at) "
                              "VALUES ('hl7', :at, :s, 'MSH|', :at)"), {"at": at, "s": status})
        service.ensure(conn, NOW)
    _audit_rows(engine, [old])
    settings = get_settings()
    settings.outbox_retention_days, settings.hl7_retention_days = 90, 365
    with engine.begin() as conn:
        upkeep = service.apply_retention(conn, NOW)
    assert upkeep.deleted == {"outbox": 2, "inbound_message": 1}
    with Session(engine) as db:
        assert sorted(m.status for m in db.query(OutboxMessage)) == ["done", "failed"]
    assert _count(engine, "SELECT count(*) FROM inbound_message WHERE status = 'quarantined'") == 1
    assert _count(engine, "SELECT count(*) FROM inbound_message") == 2
    assert _count(engine, "SELECT count(*) FROM audit_event") == 1  # no retention for the audit log
    # a month with nothing left to keep is dropped whole
    with engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'done' WHERE status = 'failed'"))
        upkeep = service.apply_retention(conn, NOW)
    assert "outbox_p202402" in upkeep.dropped


def test_a_date_bounded_audit_query_reads_only_its_months(fresh) -> None:  # type: ignore[no-untyped-def]
    url, engine = fresh
    upgrade(url)
    with engine.begin() as conn:
        for month in range(1, 13):
            repo.create_month(conn, "audit_event", datetime(2025, month, 1).date())
    with engine.connect() as conn:
        plan = "\n".join(conn.scalars(text(
            "EXPLAIN SELECT * FROM audit_event WHERE patient_id = 7 AND at >= '2025-05-01 00:00+08' "
            "AND at < '2025-05-08 00:00+08' ORDER BY id DESC LIMIT 50")))
        scanned = {p for p in repo.months(conn, "audit_event") if repo.partition_name("audit_event", p) in plan}
    assert {m.strftime("%Y%m") for m in scanned} == {"202504", "202505"}, plan
    assert "audit_event_pdefault" not in plan
