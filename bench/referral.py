"""B4: referral lifecycle step over HTTP, 64 clients racing, as a ratio to raw PostgreSQL.

    python bench/referral.py [--quick] [--pairs 3] [--secs 10]

Each request asks `POST /api/v1/referrals/{id}/transition` to move a random submitted
referral to `received` with `expected_status=submitted` (the receiving hospital's API
token). Clients race on the same referrals: exactly one move per referral may win, the
others must get 409. Afterwards: wins == referrals received == `received` history rows,
and no referral has two (wrk does not count the ≤ 64 requests still in flight when its
time is up, so wins ≤ received ≤ wins + 64). Reference: `pg_reference.sh tx 8` (BEGIN/UPDATE/INSERT/COMMIT).
On PostgreSQL the move is served by referral/fastpath.py (one statement); `--orm` turns that off
(YILIANTI_REFERRAL_FAST_PATH=false) to measure the reference path `service.transition`.
Reuses the database set-up, wrk driver and server start of bench/booking.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import booking as bb  # noqa: E402

LUA = """
local rmin, rmax = %(rmin)d, %(rmax)d
local token = "%(token)s"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6)) end
function request()
  local r = math.random(rmin, rmax)
  return wrk.format("POST", "/api/v1/referrals/" .. r .. "/transition",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token},
    '{"to_status":"received","expected_status":"submitted"}')
end
function response(status, headers, body)
  _G["c" .. status] = (_G["c" .. status] or 0) + 1
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


def lead_token(url: str, lead_id: int) -> str:
    from sqlalchemy.orm import sessionmaker

    from yilianti.auth import service as auth
    from yilianti.auth.security import new_api_token
    from yilianti.db import make_engine
    from yilianti.models import ApiToken

    engine = make_engine(url, timeouts=False)  # the bulk load runs past the request timeouts
    with sessionmaker(bind=engine)() as db:
        user = auth.create_user(db, None, "bench-specialist", "Bench2026!", "基准专家", [("doctor", lead_id, None)])
        token, prefix, hashed = new_api_token()
        db.add(ApiToken(user_id=user.id, institution_id=lead_id, name="bench", prefix=prefix, token_hash=hashed))
        db.commit()
    engine.dispose()
    return token


def make_referrals(url: str, ids: dict[str, int], n: int) -> tuple[int, int]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as c:
        lo = c.execute(text("SELECT coalesce(max(id), 0) + 1 FROM referral")).scalar_one()
        c.execute(text(
            "INSERT INTO referral (direction, patient_id, from_institution_id, to_institution_id, reason, priority, "
            "permanent, summary, status, due_at, submitted_at, updated_at, created_at) "
            "SELECT 'up', :pmin + (g % (:pmax - :pmin + 1)), :comm, :lead, '基准上转', 'routine', true, '{}', "
            "'submitted', now() + interval '4 hours', now(), now(), now() FROM generate_series(1, :n) g"),
            {"pmin": ids["pmin"], "pmax": ids["pmax"], "comm": ids["comm"], "lead": ids["lead"], "n": n})
        hi = c.execute(text("SELECT max(id) FROM referral")).scalar_one()
        c.execute(text(
            "INSERT INTO referral_history (referral_id, at, acting_institution_id, from_status, to_status) "
            "SELECT id, now(), :comm, 'draft', 'submitted' FROM referral WHERE id BETWEEN :lo AND :hi"),
            {"comm": ids["comm"], "lo": lo, "hi": hi})
        c.execute(text("ANALYZE referral"))
    engine.dispose()
    return lo, hi


def invariants(url: str, lo: int, hi: int) -> dict[str, int]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    time.sleep(2)  # let the server finish the requests wrk stopped waiting for
    with engine.connect() as c:  # one statement, one snapshot
        received, rows, dup = c.execute(text(
            "SELECT (SELECT count(*) FROM referral WHERE id BETWEEN :lo AND :hi AND status = 'received'), "
            "(SELECT count(*) FROM referral_history WHERE referral_id BETWEEN :lo AND :hi "
            " AND to_status = 'received'), "
            "(SELECT count(*) FROM (SELECT referral_id FROM referral_history WHERE referral_id BETWEEN :lo AND :hi "
            " AND to_status = 'received' GROUP BY referral_id HAVING count(*) > 1) x)"),
            {"lo": lo, "hi": hi}).one()
    engine.dispose()
    return {"received": int(received), "history_rows": int(rows), "duplicate": int(dup)}


def profile(url: str, ids: dict[str, int], token: str, n: int) -> None:
    """In-process profile of the transition request on PostgreSQL: SQL statements per request by
    kind and table, and where the Python time goes (cProfile, cumulative)."""
    import collections
    import cProfile
    import pstats
    import re

    os.environ.update(YILIANTI_DATABASE_URL=url, YILIANTI_RUN_JOBS_IN_PROCESS="false", YILIANTI_SECRET_KEY="bench",
                      YILIANTI_BOOKING_FAST_PATH="false", YILIANTI_REFERRAL_FAST_PATH="false")
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from yilianti import db as dbmod
    from yilianti.config import get_settings
    from yilianti.main import create_app

    get_settings.cache_clear()  # the set-up imported the app with the default settings
    dbmod._engine, dbmod._factory = None, None

    lo, hi = make_referrals(url, ids, n + 20)
    app = create_app(run_jobs=False)
    statements: collections.Counter[str] = collections.Counter()
    engine = dbmod.get_engine()

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        m = re.match(r"\s*(\w+)\s+(?:.*?\b(?:FROM|INTO|UPDATE)\s+)?(\w+)?", statement, re.S | re.I)
        verb = (m.group(1).upper() if m else "?")
        table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", statement, re.I)
        statements[f"{verb} {table.group(1) if table else ''}".strip()] += 1

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = '{"to_status":"received","expected_status":"submitted"}'
    with TestClient(app) as client:
        for rid in range(hi - 19, hi + 1):  # warm-up
            client.post(f"/api/v1/referrals/{rid}/transition", content=body, headers=headers)
        event.listen(engine, "before_cursor_execute", count)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for rid in range(lo, lo + n):
            r = client.post(f"/api/v1/referrals/{rid}/transition", content=body, headers=headers)
            assert r.status_code == 200, r.text
        prof.disable()
        secs = time.perf_counter() - t0
        event.remove(engine, "before_cursor_execute", count)
    print(f"HTTP: {n} transitions in one client: {n / secs:.0f} req/s, {1000 * secs / n:.2f} ms each")
    print(f"SQL statements per transition request: {sum(statements.values()) / n:.1f}")
    for key, v in statements.most_common():
        print(f"  {v / n:5.2f}  {key}")

    # the transition path itself, without HTTP: the API's service calls and commit, profiled in this thread
    from sqlalchemy import select

    from yilianti.auth import service as auth
    from yilianti.models import User
    from yilianti.referral.api import _detail, apply_move

    lo, hi = make_referrals(url, ids, n)
    factory = dbmod.session_factory()
    with factory() as db:
        user = db.scalars(select(User).where(User.username == "bench-specialist")).one()
        subject = auth.build_subject(db, user, ids["lead"])
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for rid in range(lo, lo + n):
        with factory() as db:
            moved = apply_move(db, subject, rid, "received", expected_status="submitted")
            _detail(db, subject, rid)  # as the API does, holding the moved referral (weak identity map)
            db.commit()
            del moved
    prof.disable()
    secs = time.perf_counter() - t0
    print(f"service path: {n / secs:.0f} transitions/s, {1000 * secs / n:.2f} ms each (one thread)")
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(r"yilianti/", 25)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--race-size", type=int, default=300, help="referrals per race round (small: many collide)")
    ap.add_argument("--port", type=int, default=8921)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="profile N transitions in-process (statements per request, cProfile) instead of racing")
    ap.add_argument("--orm", action="store_true", help="the reference ORM path (referral_fast_path off)")
    ap.add_argument("--workers", type=int, default=2, help="server processes")
    ap.add_argument("--reuseport", action="store_true",
                    help="serve with `yilianti serve` (YILIANTI_WEB_PROCESSES=--workers, SO_REUSEPORT) "
                         "instead of uvicorn --workers")
    ap.add_argument("--pool", type=int, default=8, help="asyncpg connections per process (YILIANTI_BOOKING_POOL_SIZE)")
    args = ap.parse_args()
    if args.orm:
        os.environ["YILIANTI_REFERRAL_FAST_PATH"] = "false"  # inherited by the server
    bb.DBNAME = "ylt_bench_referral"  # not the booking benchmark's database: both may run on one server
    if args.profile:
        url, _token, ids = bb.setup_database(args.url, patients=2000)
        profile(url, ids, lead_token(url, ids["lead"]), args.profile)
        return 0
    if args.quick:
        args.pairs, args.secs = 2, 5
    print(f"nproc={os.cpu_count()} pairs={args.pairs} secs={args.secs} path={'orm' if args.orm else 'statement'} "
          f"workers={args.workers} pool={args.pool} reuseport={args.reuseport} "
          f"load={os.getloadavg()[0]:.1f}", flush=True)
    url, _token, ids = bb.setup_database(args.url, patients=5000)
    token = lead_token(url, ids["lead"])
    server = bb.start_server(url, args.port, args.workers, args.pool, reuseport=args.reuseport)
    base = f"http://127.0.0.1:{args.port}"
    pairs, races = [], []
    try:
        def script(lo: int, hi: int) -> str:
            return LUA % {"rmin": lo, "rmax": hi, "token": token}

        lo, hi = make_referrals(url, ids, 200)
        bb.wrk(base, script(lo, hi), 16, 3)  # warm-up
        for i in range(args.pairs):
            ref = bb.reference("tx", 8, args.secs)
            lo, hi = make_referrals(url, ids, args.race_size if i == 0 else 200000)
            app = bb.wrk(base, script(lo, hi), 64, args.secs)
            inv = invariants(url, lo, hi)
            wins = app["status"].get(200, 0)  # type: ignore[union-attr]
            # wrk stops counting when its time is up; requests still in flight (at most one per
            # client) complete on the server, so received may exceed the counted wins by ≤ 64
            ok = (inv["duplicate"] == 0 and inv["received"] == inv["history_rows"]
                  and wins <= inv["received"] <= wins + 64)
            races.append({"pair": i, "wins": wins, "conflicts": app["status"].get(409, 0), **inv, "ok": ok})  # type: ignore[union-attr]
            pairs.append({"ref": ref, "app": app, "ratio": app["rps"] / ref["tps"]})  # type: ignore[operator]
            print(f"B4 pair {i}: app {app['rps']:.0f} req/s p99 {app['p99_ms']:.0f} ms status {app['status']}; "
                  f"ref {ref['tps']:.0f} tps; invariants {inv} ok={ok}", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    ratio = statistics.median(p["ratio"] for p in pairs)  # type: ignore[misc]
    p99 = statistics.median(p["app"]["p99_ms"] for p in pairs)  # type: ignore[index]
    bad = sum(0 if r["ok"] else 1 for r in races)
    print(f"\nB4 {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: ratio (median) {ratio:.3f} of `pg_reference.sh tx 8`, "
          f"p99 {p99:.0f} ms; rounds with lost or duplicate transitions: {bad}; load {os.getloadavg()}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
