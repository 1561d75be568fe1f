"""Jobs: outbox delivery with two `yilianti worker` processes (procrastinate) on PostgreSQL.

    python bench/outbox.py [--rows 50000] [--workers 2] [--concurrency 4] [--quick]

A fresh database (migrated by `yilianti migrate`), two workers started and registered; then ROWS `notify`
outbox rows are committed in chunks of 2,000 (each commit NOTIFYs the workers, as a request's would) as
fast as PostgreSQL takes them, and the clock runs until the last is delivered (one in-app notification
written per row). Reports rows/s (first commit → last delivery), the lag of the oldest due row sampled every
0.2 s (p50/p99/max), and the invariants: every row done, one notification per row, none twice. Target
(PERFORMANCE.md "jobs"): ≥ 1,000 rows/s with two workers; the hand-written runner delivered ≤ 50.
Run niced, after 17:40 UTC, under `flock /tmp/bench.lock`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
CLI = [sys.executable, "-c", "import sys; from yilianti.cli import main; sys.exit(main())"]


def _url(db: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + db


def _engine(url: str):  # type: ignore[no-untyped-def]
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=2_000)
    ap.add_argument("--quick", action="store_true", help="10,000 rows")
    args = ap.parse_args()
    rows = 10_000 if args.quick else args.rows
    name = f"bench_outbox_{os.getpid()}"
    admin = _engine(ADMIN)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = _url(name)
    var = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    env = dict(os.environ, YILIANTI_DATABASE_URL=url, YILIANTI_VAR_DIR=str(var), YILIANTI_HL7_FAST_PATH="false",
               YILIANTI_WORKER_CONCURRENCY=str(args.concurrency), YILIANTI_SECRET_KEY="bench")
    workers: list[subprocess.Popen[bytes]] = []
    engine = _engine(url)
    try:
        subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True, timeout=300)
        for i in range(args.workers):
            wenv = dict(env, YILIANTI_HL7_PORT=str(23575 + i), YILIANTI_DICOM_PORT=str(21112 + i))
            workers.append(subprocess.Popen([*CLI, "worker"], env=wenv, stdout=(var / f"w{i}.log").open("wb"),
                                            stderr=subprocess.STDOUT))
        with engine.connect() as c:
            deadline = time.monotonic() + 60
            while c.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one() < args.workers:
                if time.monotonic() > deadline:
                    raise SystemExit("workers did not register: see " + str(var))
                time.sleep(0.2)
        time.sleep(2)  # past their start-up periodic jobs
        lags: list[float] = []
        started = time.monotonic()
        with engine.connect() as c:
            for first in range(1, rows + 1, args.chunk):
                n = min(args.chunk, rows - first + 1)
                c.execute(text(
                    "INSERT INTO outbox (topic, payload, status, available_at, attempts, created_at) "
                    "SELECT 'notify', json_build_object('title', 'b-' || i, 'kind', 'info'), 'pending', now(), 0, "
                    "now() FROM generate_series(CAST(:a AS integer), CAST(:b AS integer)) AS i"), {"a": first, "b": first + n - 1})
            inserted = time.monotonic() - started
            deadline = time.monotonic() + 600
            while True:
                left, lag = c.execute(text(
                    "SELECT count(*), coalesce(extract(epoch FROM now() - min(available_at)), 0) "
                    "FROM outbox WHERE status = 'pending'")).one()
                lags.append(float(lag))
                if left == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            done = c.execute(text("SELECT count(*) FROM outbox WHERE status = 'done'")).scalar_one()
            notes, titles, most = c.execute(text(
                "SELECT count(*), count(DISTINCT title), coalesce(max(n), 0) FROM "
                "(SELECT title, count(*) AS n FROM notification GROUP BY title) t")).one()
            drains = c.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'outbox.drain'"))\
                .scalar_one()
        lags.sort()
        result = {
            "rows": rows, "workers": args.workers, "concurrency": args.concurrency, "seconds": round(elapsed, 2),
            "insert_seconds": round(inserted, 2), "rows_per_s": round(rows / elapsed),
            "lag_p50_s": round(statistics.median(lags), 2), "lag_p99_s": round(lags[int(0.99 * (len(lags) - 1))], 2),
            "lag_max_s": round(lags[-1], 2), "drain_jobs": drains, "done": done, "notifications": titles,
            "duplicates": notes - titles, "max_per_row": most, "nproc": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "ok": done == rows and titles == rows and most == 1,
        }
        print(json.dumps(result))
        return 0 if result["ok"] else 1
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.kill()
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
