"""`yilianti worker` on PostgreSQL (procrastinate): two worker processes against one database deliver every
outbox row exactly once — rows written before they start and rows committed while they run — and run each
periodic job once per period across both (procrastinate's periodic lock)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import BACKEND
from yilianti.config import normalise_db_url
from yilianti.migrate import upgrade

on_postgresql = pytest.mark.skipif(BACKEND != "postgresql", reason="procrastinate runs on PostgreSQL")

CLI = [sys.executable, "-c", "import sys; from yilianti.cli import main; sys.exit(main())"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _insert(conn, first: int, n: int) -> None:  # type: ignore[no-untyped-def]
    conn.execute(text(
        "INSERT INTO outbox (topic, payload, status, available_at, attempts, created_at) "
        "SELECT 'notify', json_build_object('title', 'q-' || i, 'kind', 'info'), 'pending', now(), 0, now() "
        "FROM generate_series(CAST(:a AS integer), CAST(:b AS integer)) AS i"), {"a": first, "b": first + n - 1})


def _start(url: str, var: Path, name: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, YILIANTI_DATABASE_URL=url, YILIANTI_VAR_DIR=str(var), YILIANTI_HL7_FAST_PATH="false",
               YILIANTI_HL7_PORT=str(_free_port()), YILIANTI_DICOM_PORT=str(_free_port()),
               YILIANTI_WORKER_CONCURRENCY="3")
    env.pop("YILIANTI_TEST_DATABASE_URL", None)
    log = (var / f"{name}.log").open("wb")
    return subprocess.Popen([*CLI, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)


def test_the_queue_runs_the_demo_runners_task_definitions() -> None:
    """One set of definitions: every @periodic job is a procrastinate periodic task with its period."""
    from yilianti.worker.queue import build_app, cron_of
    from yilianti.worker.runner import PERIODIC

    app = build_app("postgresql://nobody@127.0.0.1:1/none", factory=None)  # type: ignore[arg-type]  # not opened
    crons = {task.task.name: task.cron for task in app.periodic_registry.periodic_tasks.values()}
    assert {name: cron_of(job.every_seconds) for name, job in PERIODIC.items()}.items() <= crons.items()
    assert {"audit.seal", "referral.sweep_overdue", "scheduling.release_reserves", "outbox.sweep"} <= set(crons)
    assert "outbox.drain" in app.tasks
    assert [cron_of(s) for s in (1, 10, 60, 300, 3600, 7200)] == [
        "* * * * * *", "* * * * * */10", "*/1 * * * *", "*/5 * * * *", "0 */1 * * *", "0 */2 * * *"]


@on_postgresql
def test_two_workers_deliver_each_row_once_and_run_each_period_once(test_db: Any, tmp_path: Path) -> None:
    url = test_db.new_database_url()
    upgrade(url)
    engine = create_engine(normalise_db_url(url))
    with engine.begin() as conn:
        _insert(conn, 1, 3000)  # waiting before any worker runs
    workers = [_start(url, tmp_path, "w1"), _start(url, tmp_path, "w2")]
    try:
        with engine.connect() as conn:  # both registered with procrastinate
            deadline = time.monotonic() + 90
            while conn.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one() < 2:
                conn.rollback()
                assert time.monotonic() < deadline and all(w.poll() is None for w in workers), \
                    (tmp_path / "w1.log").read_text()
                time.sleep(0.3)
        started = time.monotonic()
        for k in range(20):  # committed while they run, each commit waking them
            with engine.begin() as conn:
                _insert(conn, 3001 + k * 100, 100)
            time.sleep(0.2)
        deadline = time.monotonic() + 120
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                left = conn.execute(text("SELECT count(*) FROM outbox WHERE status <> 'done'")).scalar_one()
                conn.rollback()
                if left == 0 and time.monotonic() - started > 15:
                    break
                assert all(w.poll() is None for w in workers), (tmp_path / "w1.log").read_text()
                time.sleep(0.5)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM outbox WHERE status <> 'done'")).scalar_one() == 0
            per_title = conn.execute(text(
                "SELECT count(*), count(DISTINCT title), max(n) FROM "
                "(SELECT title, count(*) AS n FROM notification WHERE title LIKE 'q-%' GROUP BY title) t")).one()
            assert tuple(per_title) == (5000, 5000, 1)  # every row delivered, none twice
            # each periodic job once per period: a run claims its period (periodic_run's key) in its transaction;
            # every period procrastinate ran a job for is claimed once, whatever the number of jobs it deferred
            runs = conn.execute(text("SELECT name, period FROM periodic_run")).all()
            jobs = conn.execute(text(
                "SELECT DISTINCT task_name, (args->>'timestamp')::bigint FROM procrastinate_jobs "
                "WHERE args ? 'timestamp' AND status = 'succeeded' AND task_name NOT LIKE 'outbox.%' "
                "AND task_name NOT LIKE 'queue.%'")).all()
            assert len(runs) == len(set(runs)) and set(jobs) <= set(runs)
            seals = sorted(p for n, p in runs if n == "audit.seal")
            # every second for 15 s and more (a scheduler that wakes late on a busy machine may skip a tick)
            assert len(seals) >= 8 and len(seals) == len(set(seals)), seals
            assert {"scheduling.release_reserves", "referral.sweep_overdue"} <= {n for n, _ in runs}
            drains = conn.execute(text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'outbox.drain' AND status = 'succeeded'"
            )).scalar_one()
            assert drains >= 2
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=60) for w in workers]
        engine.dispose()
    assert codes == [0, 0], [(tmp_path / f"w{i}.log").read_text()[-3000:] for i in (1, 2)]
