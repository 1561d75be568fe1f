"""The audit hash chain: `yilianti audit verify` finds a row removed or altered with database rights.

Each test commits for real in a database of its own (the chain reads what was committed), with its own
external head file. Tampering is done as an operator with full rights would: on PostgreSQL as a
superuser with the triggers switched off (session_replication_role = replica), on SQLite by dropping
the triggers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from yilianti import cli
from yilianti import db as dbmod
from yilianti.audit import chain
from yilianti.audit.service import record
from yilianti.config import get_settings
from yilianti.migrate import upgrade
from yilianti.models import AuditEvent, AuditSeal


@pytest.fixture()
def chained(test_db, tmp_path: Path) -> Iterator[sessionmaker[Session]]:  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url)
    settings = get_settings()
    saved = (settings.database_url, settings.audit_head, settings.crypto_suite)
    settings.database_url, settings.audit_head = url, str(tmp_path / "audit-head.log")
    engine = dbmod.make_engine(url)
    try:
        yield sessionmaker(bind=engine, expire_on_commit=False)
    finally:
        engine.dispose()
        settings.database_url, settings.audit_head, settings.crypto_suite = saved


def _audit(factory: sessionmaker[Session], n: int, start: int = 0) -> list[int]:
    with factory() as db:
        events = [record(db, None, "read", "patient", start + i, patient_id=start + i, username="doctor1",
                         reason="复诊", detail={"字段": ["姓名", "电话"], "n": start + i}) for i in range(n)]
        db.commit()
        return [e.id for e in events]


def _tamper(factory: sessionmaker[Session], sql: str, **params: object) -> None:
    """As an operator with every database right: past the append-only triggers."""
    with factory() as db:
        if db.get_bind().dialect.name == "postgresql":
            db.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for table in ("audit_event", "audit_seal"):
                for event in ("update", "delete"):
                    db.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{event}"))
        db.execute(text(sql), params)
        db.commit()


def _verify(factory: sessionmaker[Session]) -> chain.Report:
    with factory() as db:
        return chain.verify(db)


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(list(args))
    return code, out.getvalue()


def test_an_untouched_log_verifies_and_rows_after_the_last_link_are_reported_unsealed(chained) -> None:  # type: ignore[no-untyped-def]
    _audit(chained, 30)
    assert chain.seal_all(chained) == 1
    _audit(chained, 5, start=100)
    code, output = _cli("audit", "verify")
    assert code == 0, output
    assert "1 links, 30 rows sealed, 5 not yet sealed: OK" in output
    chain.seal_all(chained)
    report = _verify(chained)
    assert report.ok and (report.links, report.rows, report.unsealed) == (2, 35, 0)
    heads = chain.read_heads(get_settings().audit_head)
    with chained() as db:
        assert [h["hash"] for h in heads] == list(db.scalars(select(AuditSeal.hash).order_by(AuditSeal.id)))


def test_a_row_deleted_with_full_database_rights_is_named(chained) -> None:  # type: ignore[no-untyped-def]
    ids = _audit(chained, 20)
    chain.seal_all(chained)
    _tamper(chained, "DELETE FROM audit_event WHERE id = :id", id=ids[7])
    with chained() as db:
        assert db.get(AuditEvent, ids[7]) is None
    code, output = _cli("audit", "verify")
    assert code == 1
    assert f"FAIL row {ids[7]}: deleted (sealed by link 1" in output


def test_an_altered_row_is_named(chained) -> None:  # type: ignore[no-untyped-def]
    ids = _audit(chained, 20)
    chain.seal_all(chained)
    _tamper(chained, "UPDATE audit_event SET username = 'someone_else' WHERE id = :id", id=ids[3])
    report = _verify(chained)
    assert report.problems == [report.problems[0]] and report.problems[0].startswith(f"row {ids[3]}: altered since link 1")


def test_the_newest_row_deleted_is_found(chained) -> None:  # type: ignore[no-untyped-def]
    ids = _audit(chained, 10)
    chain.seal_all(chained)
    _tamper(chained, "DELETE FROM audit_event WHERE id = :id", id=ids[-1])
    report = _verify(chained)
    assert [p.split(" (")[0] for p in report.problems] == [f"row {ids[-1]}: deleted"]


def test_the_newest_rows_deleted_with_their_link_are_found_by_the_external_head(chained) -> None:  # type: ignore[no-untyped-def]
    first = _audit(chained, 10)
    chain.seal_all(chained)
    last = _audit(chained, 10, start=50)
    chain.seal_all(chained)
    # the whole newest link and its rows go: the chain left in the database is consistent in itself
    _tamper(chained, "DELETE FROM audit_event WHERE id > :id", id=first[-1])
    _tamper(chained, "DELETE FROM audit_seal WHERE id = 2")
    report = _verify(chained)
    assert not report.ok
    assert report.problems[0].startswith(f"link 2 (rows up to {last[-1]}")
    assert "is missing" in report.problems[0]


def test_a_row_inserted_into_sealed_history_and_a_rewritten_link_are_found(chained) -> None:  # type: ignore[no-untyped-def]
    ids = _audit(chained, 10)
    chain.seal_all(chained)
    _tamper(chained, "DELETE FROM audit_event WHERE id = :id", id=ids[4])
    with chained() as db:  # a new row given the removed row's id: rows inserted into sealed history are named
        db.execute(text("INSERT INTO audit_event (id, at, action, resource_type, username) "
                        "VALUES (:id, CURRENT_TIMESTAMP, 'read', 'patient', 'doctor1')"), {"id": ids[4]})
        db.commit()
    _tamper(chained, "UPDATE audit_seal SET row_count = 9")
    report = _verify(chained)
    assert any(p.startswith(f"row {ids[4]}: altered") for p in report.problems)
    assert any(p.endswith("the link itself was altered") for p in report.problems)


def test_sm3_links_follow_sha256_ones_and_verify(chained) -> None:  # type: ignore[no-untyped-def]
    _audit(chained, 5)
    chain.seal_all(chained)
    get_settings().crypto_suite = "sm"
    ids = _audit(chained, 5, start=10)
    chain.seal_all(chained)
    with chained() as db:
        assert list(db.scalars(select(AuditSeal.algorithm).order_by(AuditSeal.id))) == ["sha256", "sm3"]
    assert _verify(chained).ok
    _tamper(chained, "UPDATE audit_event SET reason = '改' WHERE id = :id", id=ids[0])
    assert _verify(chained).problems[0].startswith(f"row {ids[0]}: altered since link 2")


def test_a_missing_external_head_fails_once_there_are_links(chained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert _verify(chained).ok  # nothing sealed yet, nothing to confirm
    _audit(chained, 3)
    chain.seal_all(chained)
    Path(get_settings().audit_head).unlink()
    code, output = _cli("audit", "verify")
    assert code == 1 and "recorded outside the database is missing" in output
    assert _cli("audit", "verify", "--head", str(tmp_path / "nowhere.log"))[0] == 2


def test_the_sealer_waits_for_a_writer_still_in_progress(chained, test_db) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL gives an id before commit: a later row committed first must not be sealed past the open one."""
    if test_db.backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: every committed id is final")
    slow = chained()
    early = record(slow, None, "read", "patient", 1, username="slow")
    slow.flush()  # id taken, not committed
    late = _audit(chained, 3, start=10)
    assert early.id < late[0]
    horizon = chain.Horizon()
    for _ in range(4):
        with chained() as db:
            chain.seal_committed(db, horizon)
    with chained() as db:
        assert (db.scalar(select(AuditSeal.to_id).order_by(AuditSeal.id.desc()).limit(1)) or 0) < early.id
    slow.commit()
    slow.close()
    for _ in range(3):
        with chained() as db:
            chain.seal_committed(db, horizon)
    report = _verify(chained)
    assert report.ok and report.rows == 4 and report.unsealed == 0, report


def test_the_job_runner_seals_and_the_head_can_go_to_syslog(chained, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import logging

    from yilianti.worker.runner import PERIODIC, load_job_modules

    sent: list[str] = []

    class Syslog(logging.Handler):  # stands in for SysLogHandler(address="/dev/log")
        def __init__(self, address: str) -> None:
            super().__init__()
            assert address == "/dev/log"

        def emit(self, record: logging.LogRecord) -> None:
            sent.append(self.format(record))

    monkeypatch.setattr(logging.handlers, "SysLogHandler", Syslog)
    monkeypatch.setattr(chain, "_syslog", None)
    monkeypatch.setattr(chain, "_syslog_last", 0)
    get_settings().audit_head = "syslog"
    load_job_modules()
    job = PERIODIC["audit.seal"]
    _audit(chained, 4)
    for _ in range(3):  # PostgreSQL: the ids are final a run or two after they were given out
        with chained() as db:
            job.fn(db)
    with chained() as db:
        link = db.scalar(select(AuditSeal).order_by(AuditSeal.id.desc()).limit(1))
    assert link is not None and link.row_count == 4
    assert sent == [f"yilianti: {chain.head_line(link)}"]
    syslog_file = Path(get_settings().var_dir) / "syslog-copy.log"
    syslog_file.write_text(f"Dec  7 14:00:01 host {sent[0]}\n", encoding="utf-8")
    code, output = _cli("audit", "verify", "--head", str(syslog_file))
    assert code == 0, output
    code, output = _cli("audit", "verify")
    assert code == 1 and "give the syslog file with --head" in output


def test_verify_from_a_link_checks_only_what_follows_it(chained) -> None:  # type: ignore[no-untyped-def]
    early = _audit(chained, 5)
    chain.seal_all(chained)
    late = _audit(chained, 5, start=20)
    chain.seal_all(chained)
    _tamper(chained, "DELETE FROM audit_event WHERE id = :id", id=early[0])  # before link 2
    _tamper(chained, "UPDATE audit_event SET ip = '10.9.9.9' WHERE id = :id", id=late[1])
    code, output = _cli("audit", "verify", "--from-link", "2")
    assert code == 1
    assert f"FAIL row {late[1]}: altered since link 2" in output and f"row {early[0]}" not in output
    assert "1 links, 5 rows sealed" in output and "checked from link 2" in output
    assert f"row {early[0]}: deleted" in _cli("audit", "verify")[1]
    code, output = _cli("audit", "verify", "--from-link", "9")
    assert code == 1 and "link 9 is missing" in output


def test_a_rotated_head_file_starts_again_at_the_newest_link(chained) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        _audit(chained, 2, start=10 * n)
        chain.seal_all(chained)
    head = Path(get_settings().audit_head)
    assert [h["link"] for h in chain.read_heads(head)] == [1, 2, 3]
    head.rename(head.with_suffix(".log.1"))  # logrotate
    _audit(chained, 2, start=100)
    chain.seal_all(chained)
    links = [h["link"] for h in chain.read_heads(head)]
    assert links[-1] == 4 and links[0] >= 3  # the new file starts at the newest link, not the whole history
    assert _verify(chained).ok
