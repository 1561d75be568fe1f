"""B1 (slot-release burst) and B2 (steady booking) over HTTP, as ratios to raw PostgreSQL.

    python bench/booking.py [--quick] [--pairs 3] [--reps 20] [--url postgresql://postgres@127.0.0.1:5432]

Needs: a local PostgreSQL (trust auth), `wrk` (apt-get install wrk), pgbench, and
../shared/bench/pg_reference.sh. Creates and drops the database `ylt_bench`. The app runs
as `uvicorn yilianti.main:create_app --factory --workers 2` on 127.0.0.1 only; every load
loop is bounded by wrk's duration. Writes bench/out/booking-<time>.json and prints the
lines for docs/benchmarks.md.

Protocol (PERFORMANCE.md): warm up, interleave reference and app runs, report the median
per-pair ratio; correctness invariants are hard pass/fail (0 overbooked, 0 duplicates).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
# beside the checkout (../shared), or where YLT_PG_REFERENCE says (a worktree elsewhere)
REF = Path(os.environ.get("YLT_PG_REFERENCE") or ROOT.parent / "shared" / "bench" / "pg_reference.sh")
DBNAME = "ylt_bench"


def sh(cmd: list[str], **kw) -> str:  # type: ignore[no-untyped-def]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def reference(name: str, clients: int, secs: int) -> dict[str, float]:
    # the reference database is shared by every benchmark on the machine: another run resetting its
    # tables aborts pgbench's clients (exit 2); try again rather than lose the run
    for attempt in range(3):
        proc = subprocess.run(["bash", str(REF), name, str(clients), str(secs)], capture_output=True, text=True)
        if proc.returncode == 0:
            break
        print(f"reference {name} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}", flush=True)
        time.sleep(5 * (attempt + 1))
    proc.check_returncode()
    out = proc.stdout
    m = dict(re.findall(r"(\w+)=([\d.]+)", out))
    return {"tps": float(m["tps"]), "p50_ms": float(m["p50_ms"]), "p99_ms": float(m["p99_ms"])}


def statement_only(url: str, sessions: list[int], ids: dict[str, int], clients: int, secs: int,
                   per_statement: int = 1) -> dict[str, float]:
    """The app's booking statement alone (scheduling/fastpath.py BOOK), run by pgbench with `per_statement`
    bookings in each (as the app batched them in the run beside it): the most the app could reach if HTTP,
    JSON and Python cost nothing. Same parameters as the app sends; bookings counted in the database."""
    from yilianti.scheduling.fastpath import BOOK

    assert sessions == list(range(sessions[0], sessions[0] + len(sessions))), "sessions must be contiguous ids"
    k = max(1, per_statement)

    def array(element: str, cast: str = "") -> str:
        return "ARRAY[" + ",".join(element.format(j=j) for j in range(k)) + "]" + cast

    values = {1: array(":sid{j}", "::bigint[]"), 2: array(":pid{j}", "::bigint[]"),
              3: array(str(ids["comm"]), "::bigint[]"), 4: array(str(ids["user"]), "::bigint[]"),
              5: array("'bench-doctor'"), 6: "now()", 7: "(now() AT TIME ZONE 'Asia/Shanghai')::date",
              8: array("NULL", "::text[]"), 9: array("NULL", "::text[]"), 10: array("NULL", "::bigint[]"),
              11: array(":rnd{j}::text"), 12: array("'127.0.0.1'"), 13: array("'api'")}
    sql = " ".join(re.sub(r"\$(\d+)", lambda m: values[int(m.group(1))], BOOK).split())
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        # k different sessions from a random start, as the app never puts one session twice in a statement
        fh.write(f"\\set r random(0, {len(sessions) - 1})\n")
        for j in range(k):
            fh.write(f"\\set sid{j} {sessions[0]} + (:r + {j}) % {len(sessions)}\n"
                     f"\\set pid{j} random({ids['pmin']}, {ids['pmax']})\n\\set rnd{j} random(0, 999999999)\n")
        fh.write(f"{sql};\n")
        path = fh.name
    u = make_url(url)
    before = booked_in(url, sessions)
    started = time.monotonic()
    proc = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(secs),
                           "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
                           "-f", path, u.database or DBNAME], capture_output=True, text=True)
    elapsed = time.monotonic() - started
    os.unlink(path)
    out = proc.stdout + proc.stderr
    tps = re.search(r"tps = ([\d.]+)", out)
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    # a concurrent booking of the same patient aborts that pgbench client (unique index): counted, rare
    return {"tps": (booked_in(url, sessions) - before) / min(elapsed, secs + 0.5), "statements_per_s":
            float(tps.group(1)) if tps else float("nan"), "per_statement": k,
            "latency_ms": float(lat.group(1)) if lat else float("nan"),
            "aborted_clients": float(len(re.findall(r"client \d+ script \d+ aborted", out)))}


def db_now(url: str) -> datetime:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as c:
        now: datetime = c.execute(text("SELECT now()")).scalar_one()
    engine.dispose()
    return now


def booked_in(url: str, sessions: list[int]) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM booking WHERE session_id = ANY(:ids)"), {"ids": sessions}).scalar_one()
    engine.dispose()
    return int(n)


def batching(url: str, sessions: list[int], since: datetime) -> dict[str, float]:
    """How the app grouped its bookings: a batch's bookings share their created_at (the statement's now)."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as c:
        n, statements, biggest = c.execute(text(
            "SELECT count(*), count(DISTINCT created_at), coalesce(max(n), 0) FROM booking "
            "JOIN (SELECT created_at AS at, count(*) n FROM booking WHERE session_id = ANY(:ids) AND created_at >= :t "
            "      GROUP BY created_at) g ON g.at = booking.created_at "
            "WHERE session_id = ANY(:ids) AND created_at >= :t"), {"ids": sessions, "t": since}).one()
    engine.dispose()
    return {"bookings": int(n), "statements": int(statements), "mean": n / max(statements, 1), "max": int(biggest)}


# ---------------------------------------------------------------------------------------- data


def fresh_database(base_url: str, name: str) -> str:
    """A benchmark's own database, dropped and created again, migrated to head; its URL (booking, recognition
    and cockpit benchmarks)."""
    admin = create_engine(base_url + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = f"{base_url}/{name}"
    from yilianti.migrate import upgrade

    upgrade(url)
    return url


def setup_database(base_url: str, patients: int) -> tuple[str, str, dict[str, int]]:
    url = fresh_database(base_url, DBNAME)
    from sqlalchemy.orm import sessionmaker

    from yilianti.auth import service as auth
    from yilianti.auth.security import new_api_token
    from yilianti.db import make_engine
    from yilianti.models import Alliance, ApiToken, Institution, Membership, Schedule

    engine = make_engine(url)
    with sessionmaker(bind=engine)() as db:
        lead = Institution(name="首都儿科研究所", kind="specialty", level=3, province="北京")
        comm = Institution(name="太阳宫社区卫生服务中心", kind="community_center", level=1, province="北京")
        db.add_all([lead, comm])
        db.flush()
        alliance = Alliance(key="bench", name="基准医联体", model="urban_group")
        db.add(alliance)
        db.flush()
        db.add_all([Membership(alliance_id=alliance.id, institution_id=lead.id, role="lead"),
                    Membership(alliance_id=alliance.id, institution_id=comm.id, role="member")])
        user = auth.create_user(db, None, "bench-doctor", "Bench2026!", "基准医生", [("doctor", comm.id, None)])
        token, prefix, hashed = new_api_token()
        db.add(ApiToken(user_id=user.id, institution_id=comm.id, name="bench", prefix=prefix, token_hash=hashed))
        schedule = Schedule(institution_id=lead.id, kind="clinic", name="基准专家门诊", reserve_alliance_id=alliance.id)
        db.add(schedule)
        db.commit()
        ids = {"lead": lead.id, "comm": comm.id, "alliance": alliance.id, "schedule": schedule.id, "user": user.id}
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO patient (name, sex, birth_date, registered_by_institution_id, active, created_at) "
            "SELECT '患者' || g, CASE WHEN g % 2 = 0 THEN '女' ELSE '男' END, DATE '2010-01-01' + (g % 3000), "
            ":comm, true, now() FROM generate_series(1, :n) g"), {"comm": ids["comm"], "n": patients})
        c.execute(text(
            "INSERT INTO care_relationship (patient_id, institution_id, kind, started_at, created_at) "
            "SELECT id, :comm, 'registered', now(), now() FROM patient"), {"comm": ids["comm"]})
        ids["pmin"], ids["pmax"] = c.execute(text("SELECT min(id), max(id) FROM patient")).one()
        c.execute(text("ANALYZE"))
    engine.dispose()
    return url, token, ids


def make_sessions(url: str, schedule_id: int, alliance_id: int, n: int, capacity: int,
                  reserved_share: float = 1 / 3, day_offset: int = 3) -> list[int]:
    """n open sessions of `capacity` seats (a third reserved for the alliance), set-based, contiguous ids."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    starts = datetime.now(UTC) + timedelta(days=day_offset)
    reserved = -(-capacity // 3) if reserved_share else 0
    with engine.begin() as c:
        c.execute(text("LOCK TABLE clinic_session IN EXCLUSIVE MODE"))  # contiguous ids for pgbench's random()
        base = c.execute(text("SELECT coalesce(max(id), 0) FROM clinic_session")).scalar_one()
        ats = [starts + timedelta(minutes=base + i) for i in range(n)]
        ids = list(c.execute(text(
            "INSERT INTO clinic_session (schedule_id, day, starts_at, ends_at, capacity, reserved_capacity, "
            "reserve_alliance_id, reserve_cutoff_at, reserve_released_count, status, created_at) "
            "SELECT :s, (at AT TIME ZONE 'UTC')::date, at, at + interval '3 hours', :cap, :res, :a, "
            "at - interval '24 hours', 0, 'open', now() FROM unnest(CAST(:ats AS timestamptz[])) WITH ORDINALITY "
            "AS t(at, i) ORDER BY i RETURNING id"),
            {"s": schedule_id, "cap": capacity, "res": reserved, "a": alliance_id, "ats": ats}).scalars())
        ids.sort()
        c.execute(text(
            "INSERT INTO slot (session_id, seq, starts_at, pool, reserved_origin, booked) "
            "SELECT sid, g, NULL, CASE WHEN g % 3 = 1 AND g <= :res * 3 THEN 'reserved' ELSE 'public' END, "
            "g % 3 = 1 AND g <= :res * 3, false "
            "FROM unnest(CAST(:ids AS bigint[])) sid, generate_series(1, :cap) g"),
            {"ids": ids, "cap": capacity, "res": reserved})
        c.execute(text("ANALYZE slot"))
        c.execute(text("ANALYZE clinic_session"))
    engine.dispose()
    return ids


def check_invariants(url: str, session_ids: list[int]) -> dict[str, int]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as c:
        row = c.execute(text("""
            WITH b AS (SELECT session_id, count(*) n FROM booking
                       WHERE status IN ('booked','arrived') AND session_id = ANY(:ids) GROUP BY session_id),
                 s AS (SELECT id, capacity FROM clinic_session WHERE id = ANY(:ids)),
                 bs AS (SELECT session_id, count(*) n FROM slot WHERE booked AND session_id = ANY(:ids)
                        GROUP BY session_id)
            SELECT
              coalesce(sum(greatest(coalesce(b.n, 0) - s.capacity, 0)), 0) AS overbooked,
              coalesce(sum(abs(coalesce(b.n, 0) - coalesce(bs.n, 0))), 0) AS phantom,
              coalesce(sum(coalesce(b.n, 0)), 0) AS bookings,
              coalesce(sum(s.capacity), 0) AS capacity
            FROM s LEFT JOIN b ON b.session_id = s.id LEFT JOIN bs ON bs.session_id = s.id
        """), {"ids": session_ids}).one()
        dup_slot = c.execute(text(
            "SELECT count(*) FROM (SELECT slot_id FROM booking WHERE status IN ('booked','arrived') "
            "AND session_id = ANY(:ids) GROUP BY slot_id HAVING count(*) > 1) x"), {"ids": session_ids}).scalar_one()
        dup_patient = c.execute(text(
            "SELECT count(*) FROM (SELECT session_id, patient_id FROM booking WHERE status IN ('booked','arrived') "
            "AND session_id = ANY(:ids) GROUP BY session_id, patient_id HAVING count(*) > 1) x"),
            {"ids": session_ids}).scalar_one()
    engine.dispose()
    return {"overbooked": int(row.overbooked), "phantom": int(row.phantom), "bookings": int(row.bookings),
            "capacity": int(row.capacity), "duplicate_slot": int(dup_slot), "duplicate_patient": int(dup_patient)}


# ---------------------------------------------------------------------------------------- load


LUA = """
local sessions = {%(sessions)s}
local token = "%(token)s"
local pmin, pmax = %(pmin)d, %(pmax)d
local threads = {}
local counts = {}
function setup(thread) table.insert(threads, thread) end
function init(args) math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6)) end
function request()
  local s = sessions[math.random(#sessions)]
  local p = math.random(pmin, pmax)
  return wrk.format("POST", "/api/v1/bookings",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token},
    '{"session_id":' .. s .. ',"patient_id":' .. p .. '}')
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for _, code in ipairs({200, 201, 401, 403, 404, 409, 422, 500, 503}) do
      local v = t:get("c" .. code)
      if v then total[code] = (total[code] or 0) + v end
    end
  end
  io.write("STATUS")
  for code, v in pairs(total) do io.write(" " .. code .. "=" .. v) end
  io.write("\\n")
end
"""
LUA_COUNTS = """
function response(status, headers, body)
  _G["c" .. status] = (_G["c" .. status] or 0) + 1
end
"""


def wrk(base: str, script: str, clients: int, secs: float) -> dict[str, object]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script.replace(
            "function response(status, headers, body)\n  counts[status] = (counts[status] or 0) + 1\nend",
            LUA_COUNTS.strip()))
        path = fh.name
    out = sh(["wrk", "-t2", f"-c{clients}", f"-d{secs}s", "--timeout", "10s", "--latency", "-s", path, base])
    os.unlink(path)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    status = dict((int(k), int(v)) for k, v in re.findall(r"(\d+)=(\d+)", out.split("STATUS", 1)[1]))
    return {"rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99"), "status": status}


# YLT_BENCH_SEAL=1: seal the audit hash chain while the load runs (the job `audit.seal` of `yilianti worker`)
SEALER = """
import os, sys, time
from sqlalchemy.orm import sessionmaker
from yilianti.audit import chain
from yilianti.config import get_settings
from yilianti.db import make_engine
factory = sessionmaker(bind=make_engine(get_settings().database_url), expire_on_commit=False)
links, busy, started = 0, 0.0, time.monotonic()
def server_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
watch = int(os.environ["YLT_SEAL_WATCH_PID"])
while server_alive(watch):
    t = time.monotonic()
    with factory() as db:
        links += chain.seal_committed(db)
    busy += time.monotonic() - t
    if time.monotonic() - started > 10:
        print(f"sealer: {links} links in 10 s, {busy:.2f} s busy", file=sys.stderr, flush=True)
        links, busy, started = 0, 0.0, time.monotonic()
    time.sleep(get_settings().audit_seal_seconds)
"""


def start_server(url: str, port: int, workers: int, pool: int = 8,  # type: ignore[type-arg]
                 reuseport: bool = False) -> subprocess.Popen:
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is already in use (a server left over from another run?)")
    env = dict(os.environ, YILIANTI_DATABASE_URL=url, YILIANTI_RUN_JOBS_IN_PROCESS="false",
               YILIANTI_SECRET_KEY="bench", YILIANTI_VAR_DIR=tempfile.mkdtemp(),
               YILIANTI_BOOKING_POOL_SIZE=str(pool))
    if reuseport:  # `yilianti serve`: one SO_REUSEPORT socket per process, the kernel spreads connections
        env.update(YILIANTI_WEB_PROCESSES=str(workers), YILIANTI_HOST="127.0.0.1", YILIANTI_PORT=str(port),
                   YILIANTI_ACCESS_LOG="false")  # as uvicorn --no-access-log below
        cmd = [sys.executable, "-c", "import sys; from yilianti.cli import main; sys.exit(main())", "serve"]
    else:  # uvicorn --workers: one shared listening socket
        cmd = [sys.executable, "-m", "uvicorn", "yilianti.main:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    if os.environ.get("YLT_BENCH_SEAL"):  # the audit chain's sealer alongside, as `yilianti worker` runs it
        subprocess.Popen([sys.executable, "-c", SEALER], env=dict(env, YLT_SEAL_WATCH_PID=str(proc.pid)),
                         start_new_session=True)  # it ends with the server
    import urllib.request

    deadline = time.monotonic() + 90  # a shared, loaded machine can take long to import the app twice
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            if reuseport:
                time.sleep(5)  # the first process answers; give the others time to finish starting
            return proc
        except Exception:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)  # the workers too, or they keep the port
    proc.wait(timeout=20)
    raise RuntimeError("server did not start")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--quick", action="store_true", help="a short run (minutes): fewer reps and seconds")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--burst-secs", type=int, default=9, help="seconds of each sell-out repetition")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--port", type=int, default=8911)
    ap.add_argument("--reuseport", action="store_true",
                    help="serve with `yilianti serve` (YILIANTI_WEB_PROCESSES=--workers, SO_REUSEPORT) "
                         "instead of uvicorn --workers")
    ap.add_argument("--pool", type=int, default=8, help="booking connections per worker (YILIANTI_BOOKING_POOL_SIZE)")
    ap.add_argument("--patients", type=int, default=100000)
    ap.add_argument("--hot-seats", type=int, default=50000, help="seats of each hot session in B1's throughput phase")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.secs, args.pairs = 5, 5, 2
    started = time.time()
    print(f"nproc={os.cpu_count()} workers={args.workers} pairs={args.pairs} reps={args.reps} secs={args.secs}",
          flush=True)
    url, token, ids = setup_database(args.url, patients=args.patients)
    server = start_server(url, args.port, args.workers, args.pool, reuseport=args.reuseport)
    base = f"http://127.0.0.1:{args.port}"
    result: dict[str, object] = {"nproc": os.cpu_count(), "workers": args.workers, "reuseport": args.reuseport, "at": datetime.now(UTC).isoformat()}
    try:
        def script(sessions: list[int]) -> str:
            return LUA % {"sessions": ",".join(map(str, sessions)), "token": token, "pmin": ids["pmin"],
                          "pmax": ids["pmax"]}

        # warm-up
        warm = make_sessions(url, ids["schedule"], ids["alliance"], 5, 2000)
        wrk(base, script(warm), 32, 3)

        # ---- B1 correctness: 10 hot sessions × 30 slots, 200 clients, sold out `reps` times
        burst = []
        for rep in range(args.reps):
            sessions = make_sessions(url, ids["schedule"], ids["alliance"], 10, 30, day_offset=5 + rep)
            load = wrk(base, script(sessions), 200, args.burst_secs)
            inv = check_invariants(url, sessions)
            burst.append({"rep": rep, **inv, "status": load["status"], "p99_ms": load["p99_ms"]})
            print(f"B1 rep {rep}: {inv} status={load['status']}", flush=True)
        b1_bad = sum(r["overbooked"] + r["phantom"] + r["duplicate_slot"] + r["duplicate_patient"]  # type: ignore[operator]
                     for r in burst)
        b1_soldout = sum(1 for r in burst if r["bookings"] == r["capacity"])

        # ---- B1 throughput (large capacity) vs `pg_reference.sh hot 64`, and B2 uniform vs `book 8`;
        # beside each, the booking statement alone (pgbench, as many clients as the app has connections)
        # on sessions of its own: the ceiling for the app on this machine at that moment
        hot = make_sessions(url, ids["schedule"], ids["alliance"], 10, args.hot_seats, day_offset=40)
        hot_stmt = make_sessions(url, ids["schedule"], ids["alliance"], 10, args.hot_seats, day_offset=80)
        uniform_all: list[int] = []
        uniform_stmt_all: list[int] = []
        conns = args.workers * args.pool
        b1_pairs, b2_pairs = [], []

        def pair(name: str, ref: dict[str, float], app: dict[str, object], stmt: dict[str, float]) -> dict[str, object]:
            status: dict[int, int] = app["status"]  # type: ignore[assignment]
            booked = app["rps"] * status.get(201, 0) / max(sum(status.values()), 1)  # type: ignore[operator]
            print(f"{name}: app {app['rps']:.0f} req/s, {booked:.0f} booked/s, p99 {app['p99_ms']:.0f} ms "
                  f"{app['status']}; statement alone {stmt['tps']:.0f} booked/s ({stmt['per_statement']} per statement); ref {ref['tps']:.0f} tps", flush=True)
            return {"ref": ref, "app": app, "statement": stmt, "booked_per_s": booked, "ratio": booked / ref["tps"],
                    "statement_ratio": stmt["tps"] / ref["tps"], "app_of_statement": booked / stmt["tps"]}

        def app_then_statement(sessions: list[int], clients: int, stmt_sessions: list[int]
                               ) -> tuple[dict[str, object], dict[str, float]]:
            since = db_now(url)
            app = wrk(base, script(sessions), clients, args.secs)
            app["batching"] = grouped = batching(url, sessions, since)
            print(f"  the app's statements: {grouped['statements']} for {grouped['bookings']} bookings, "
                  f"{grouped['mean']:.1f} on average, at most {grouped['max']}", flush=True)
            # the statement alone with as many bookings in each as the app sent on average
            return app, statement_only(url, stmt_sessions, ids, conns, args.secs, round(grouped["mean"]))

        for i in range(args.pairs):
            ref = reference("hot", 64, args.secs)
            app, stmt = app_then_statement(hot, 200, hot_stmt)
            b1_pairs.append(pair(f"B1 pair {i}", ref, app, stmt))
            ref = reference("book", 8, args.secs)
            # B2: 100,000 fresh seats for each run (at 4,000 bookings a second, three runs would fill one set)
            uniform = make_sessions(url, ids["schedule"], ids["alliance"], 2000, 50, day_offset=60 + 20 * i)
            uniform_stmt = make_sessions(url, ids["schedule"], ids["alliance"], 2000, 50, day_offset=70 + 20 * i)
            uniform_all += uniform
            uniform_stmt_all += uniform_stmt
            app, stmt = app_then_statement(uniform, 64, uniform_stmt)
            b2_pairs.append(pair(f"B2 pair {i}", ref, app, stmt))
        b1_inv = check_invariants(url, hot)
        b2_inv = check_invariants(url, uniform_all)
        stmt_inv = check_invariants(url, hot_stmt + uniform_stmt_all)

        def summary(pairs: list[dict[str, object]]) -> dict[str, float]:
            return {k: statistics.median(p[k] for p in pairs)  # type: ignore[misc,type-var]
                    for k in ("ratio", "statement_ratio", "app_of_statement", "booked_per_s")} | {
                "p99_ms": statistics.median(p["app"]["p99_ms"] for p in pairs)}  # type: ignore[index,misc]

        result.update({
            "b1": {"burst": burst, "violations": b1_bad, "sold_out_reps": b1_soldout, "pairs": b1_pairs,
                   "median": summary(b1_pairs), "throughput_invariants": b1_inv},
            "b2": {"pairs": b2_pairs, "median": summary(b2_pairs), "invariants": b2_inv},
            "statement_invariants": stmt_inv,
            "seconds": round(time.time() - started),
        })
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"booking-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str))
    b1, b2 = result["b1"], result["b2"]  # type: ignore[index]
    m1, m2 = b1["median"], b2["median"]  # type: ignore[index]
    print(f"\nB1 burst: {args.reps} reps, sold out {b1['sold_out_reps']}, violations {b1['violations']}; "  # type: ignore[index]
          f"throughput (medians) {m1['booked_per_s']:.0f} booked/s = {m1['ratio']:.2f} of `pg_reference.sh hot 64`, "
          f"p99 {m1['p99_ms']:.0f} ms; statement alone {m1['statement_ratio']:.2f} of the reference, "
          f"app {m1['app_of_statement']:.2f} of the statement; invariants {b1['throughput_invariants']}")  # type: ignore[index]
    print(f"B2 steady: {m2['booked_per_s']:.0f} booked/s = {m2['ratio']:.2f} of `pg_reference.sh book 8`, "
          f"p99 {m2['p99_ms']:.0f} ms; statement alone {m2['statement_ratio']:.2f} of the reference, "
          f"app {m2['app_of_statement']:.2f} of the statement; invariants {b2['invariants']}")  # type: ignore[index]
    print(f"statement-alone sessions: {result['statement_invariants']}")
    print(f"results: {path}")
    bad = [b1["throughput_invariants"], b2["invariants"], result["statement_invariants"]]  # type: ignore[index]
    violations = b1["violations"] + sum(i["overbooked"] + i["phantom"] + i["duplicate_slot"]  # type: ignore[index]
                                        + i["duplicate_patient"] for i in bad)  # type: ignore[index]
    return 0 if violations == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
