"""B5: the cockpit's monthly rollups over millions of referrals, as ratios to the raw GROUP BY SQL in the same run.

    python bench/cockpit.py [--referrals 5000000] [--encounters 5000000] [--quick] [--pairs 3] [--secs 10]

Data: `--institutions` (100) in alliances of ten (a lead and nine members), `--referrals` referrals over three
years (up: member → lead, down: lead → member, a fifth with a receiving department) and `--encounters` encounters
imported from the members' HIS (outpatient, emergency, a tenth inpatient stays; TCM, costs and the insurance fund's
share) with an out-of-county register of a fiftieth as many, generated set-based on PostgreSQL (INSERT … SELECT
generate_series; the bulk load a HIS import would be).

1. Rebuild: `rollup.rebuild` of the three years for every alliance (what `yilianti cockpit rebuild` runs) against
   the raw GROUP BY month × institution × direction over the same referrals plus month × institution × kind over the
   encounters (counts, costs, insurance) and month × alliance × kind over the register, interleaved `--pairs`
   times; the median per-pair ratio. Target ≤ 1.5. Also against the GROUP BY at the rollups' own grain, the one
   the cockpit shows (month × both sides × department × direction; month × institution × department × kind × TCM),
   for what the membership rule and the writing cost on top of the grouping.
2. Incremental refresh of one day (every alliance): `rollup.build` of yesterday, repeated — it rebuilds the month so
   far — and of last month's last day (its whole month: the refresh's worst case, on the first of a month); target
   ≤ 1 s.
3. Correctness (pass/fail): one alliance's three-year figures read from the rollups equal those computed from the
   rows (every computed indicator, by month).
4. Chart API: `GET /api/v1/cockpit/figures` (the referral curves of 12 months, read from the rollups) at 50
   concurrent viewers with wrk, on 2 uvicorn workers; target p99 ≤ 50 ms. Then `/healthz` (no database) the same
   way: the machine's floor in the same run.
Reuses the server start and wrk driver of bench/booking.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import booking as bb  # noqa: E402

DBNAME = "ylt_bench_cockpit"
RAW = ("""SELECT date_trunc('month', submitted_at AT TIME ZONE 'Asia/Shanghai') AS month, from_institution_id,
                 direction, count(*)
            FROM referral GROUP BY 1, 2, 3""",
       """SELECT date_trunc('month', day) AS month, institution_id, kind, count(*), sum(total_cost), sum(insurance_paid)
            FROM encounter GROUP BY 1, 2, 3""",
       """SELECT date_trunc('month', day) AS month, alliance_id, kind, count(*), sum(insurance_paid)
            FROM out_of_county_visit GROUP BY 1, 2, 3""")
# the same rows grouped at the grain the cockpit shows and the rollups keep (local month, both sides, department,
# direction; month, institution, department, kind, TCM), without the alliance's membership rule: what any rollup
# the pages can read must at least compute
GRAIN = ("""SELECT date_trunc('month', submitted_at AT TIME ZONE 'Asia/Shanghai'), from_institution_id,
                   to_institution_id, to_department_id, direction, count(*)
              FROM referral GROUP BY 1, 2, 3, 4, 5""",
         """SELECT date_trunc('month', day), institution_id, department_id, kind, tcm, count(*), sum(total_cost),
                   sum(insurance_paid)
              FROM encounter GROUP BY 1, 2, 3, 4, 5""",
         """SELECT date_trunc('month', day), alliance_id, home_institution_id, kind, count(*), sum(insurance_paid)
              FROM out_of_county_visit GROUP BY 1, 2, 3, 4""")
HEALTHZ = """
function request() return wrk.format("GET", "/healthz") end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests) io.write("STATUS 200=" .. summary.requests .. "\\n") end
"""
LUA = """
local alliances = {%(alliances)s}
local token = "%(token)s"
local threads = {}
local counts = {}
function setup(thread) table.insert(threads, thread) end
function init(args) math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6)) end
function request()
  local a = alliances[math.random(#alliances)]
  return wrk.format("GET", "/api/v1/cockpit/figures?alliance_id=" .. a ..
    "&start=%(start)s&end=%(end)s&codes=referral.up,referral.down,referral.down_rate",
    {["Authorization"] = "Bearer " .. token})
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for _, code in ipairs({200, 401, 403, 404, 422, 500, 503}) do
      local v = t:get("c" .. code)
      if v then total[code] = (total[code] or 0) + v end
    end
  end
  io.write("STATUS")
  for code, v in pairs(total) do io.write(" " .. code .. "=" .. v) end
  io.write("\\n")
end
"""


def setup(base_url: str, institutions: int, referrals: int, today: date,
          encounters: int = 0) -> tuple[str, dict[str, object]]:
    url = bb.fresh_database(base_url, DBNAME)
    from sqlalchemy.orm import sessionmaker

    from yilianti.auth import service as auth
    from yilianti.auth.security import new_api_token
    from yilianti.db import make_engine
    from yilianti.models import Alliance, ApiToken, Department, Institution, Membership

    engine = make_engine(url, timeouts=False)
    groups = max(1, institutions // 10)
    with sessionmaker(bind=engine)() as db:
        alliance_ids, leads, members, deps = [], [], [], []
        for g in range(groups):
            lead = Institution(name=f"基准牵头医院{g}", kind="general", level=3, province="河北")
            db.add(lead)
            db.flush()
            a = Alliance(key=f"bench-{g}", name=f"基准医联体{g}", model="county_community")
            db.add(a)
            db.flush()
            db.add(Membership(alliance_id=a.id, institution_id=lead.id, role="lead"))
            dep = Department(institution_id=lead.id, name="儿科")
            db.add(dep)
            ms = []
            for k in range(9):
                m = Institution(name=f"基准成员{g}-{k}", kind="township", level=1, province="河北")
                db.add(m)
                db.flush()
                db.add(Membership(alliance_id=a.id, institution_id=m.id, role="member"))
                ms.append(m.id)
            db.flush()
            alliance_ids.append(a.id)
            leads.append(lead.id)
            members.append(ms)
            deps.append(dep.id)
        # an API token acts for one institution: the viewer administers the lead of the first alliance, and every
        # alliance (alliance_admin), so it may read each alliance's figures
        viewer = auth.create_user(db, None, "bench-viewer", "Bench2026!", "基准管理员",
                                  [("institution_admin", leads[0], None),
                                   *(("alliance_admin", None, aid) for aid in alliance_ids)])
        token, prefix, hashed = new_api_token()
        db.add(ApiToken(user_id=viewer.id, institution_id=leads[0], name="bench", prefix=prefix, token_hash=hashed))
        db.commit()
    start = datetime.combine(today - timedelta(days=3 * 365), datetime.min.time(), UTC)
    with engine.begin() as c:
        c.execute(text("INSERT INTO patient (name, sex, registered_by_institution_id, active, created_at) "
                       "SELECT '患者' || g, '男', :lead, true, now() FROM generate_series(1, 1000) g"), {"lead": leads[0]})
        pmin = c.execute(text("SELECT min(id) FROM patient")).scalar()
        # one row per referral: alliance g % groups, member k, up (60 %) or down, a fifth with the lead's department
        c.execute(text("""
            WITH r AS (SELECT s, s % :groups AS g, (s / :groups) % 9 AS k, random() < 0.6 AS up,
                              :start + (random() * interval '1095 days') AS at FROM generate_series(1, :n) s),
                 x AS (SELECT r.*, (CAST(:leads AS bigint[]))[r.g + 1] AS lead,
                              (CAST(:members AS bigint[]))[r.g * 9 + r.k + 1] AS member,
                              (CAST(:deps AS bigint[]))[r.g + 1] AS dep FROM r)
            INSERT INTO referral (direction, patient_id, from_institution_id, to_institution_id, to_department_id,
                                  reason, priority, permanent, summary, status, submitted_at, created_at, updated_at)
            SELECT CASE WHEN up THEN 'up' ELSE 'down' END, :pmin + s % 1000,
                   CASE WHEN up THEN member ELSE lead END, CASE WHEN up THEN lead ELSE member END,
                   CASE WHEN up AND s % 5 = 0 THEN dep END,
                   '基准', 'routine', true, '{}', 'submitted', at, at, at
              FROM x ORDER BY at"""),  # appended in time order, as the platform writes them
                  {"leads": leads, "members": [m for ms in members for m in ms], "deps": deps, "groups": groups,
                   "n": referrals, "start": start, "pmin": pmin})
        # encounters: alliance g % groups, the lead (k = 0, every inpatient stay of a tenth) or member k; a fifth of the
        # lead's with its department; a stay dated by its discharge (models/encounter.counted_on)
        c.execute(text("""
            WITH r AS (SELECT s, s % :groups AS g, (s / :groups) % 10 AS k, random() AS x,
                              CAST(:first AS date) + CAST(floor(random() * 1095) AS int) AS visit
                         FROM generate_series(1, :n) s),
                 x AS (SELECT r.*, CASE WHEN k = 0 THEN (CAST(:leads AS bigint[]))[r.g + 1]
                                        ELSE (CAST(:members AS bigint[]))[r.g * 9 + r.k] END AS inst,
                              CASE WHEN x < 0.1 THEN 'inpatient' WHEN x < 0.2 THEN 'emergency' ELSE 'outpatient' END AS kind,
                              CASE WHEN k = 0 AND s % 5 = 0 THEN (CAST(:deps AS bigint[]))[r.g + 1] END AS dep FROM r),
                 y AS (SELECT x.*, CASE WHEN kind = 'inpatient' THEN visit + 1 + s % 12 END AS discharge,
                              CASE WHEN kind = 'inpatient' THEN 3000 + (s % 97) * 100 ELSE 60 + s % 300 END AS cost FROM x)
            INSERT INTO encounter (institution_id, source_no, kind, department_id, visit_date, discharge_date, day,
                                   total_cost, insurance_paid, tcm, imported_at)
            SELECT inst, 'E' || s, kind, dep, visit, discharge, COALESCE(discharge, CASE WHEN kind <> 'inpatient'
                   THEN visit END), cost, round(cost * 0.6), s % 7 = 0, now()
              FROM y ORDER BY visit"""),
                  {"leads": leads, "members": [m for ms in members for m in ms], "deps": deps, "groups": groups,
                   "n": encounters, "first": start.date()})
        c.execute(text("""
            INSERT INTO out_of_county_visit (alliance_id, home_institution_id, settlement_no, kind, hospital, visit_date,
                                             discharge_date, day, total_cost, insurance_paid, imported_at)
            SELECT (CAST(:alliances AS bigint[]))[s % :groups + 1], (CAST(:members AS bigint[]))[(s % :groups) * 9 + s % 9 + 1],
                   'S' || s, CASE WHEN s % 3 = 0 THEN 'inpatient' ELSE 'outpatient' END, '省会三甲医院',
                   d, CASE WHEN s % 3 = 0 THEN d + 7 END, CASE WHEN s % 3 = 0 THEN d + 7 ELSE d END, 9000, 5400, now()
              FROM (SELECT s, CAST(:first AS date) + CAST(floor(random() * 1095) AS int) AS d
                      FROM generate_series(1, :n) s) v"""),
                  {"alliances": alliance_ids, "members": [m for ms in members for m in ms], "groups": groups,
                   "n": encounters // 50, "first": start.date()})
        c.execute(text("ANALYZE"))
    engine.dispose()
    return url, {"alliances": alliance_ids, "token": token}


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--referrals", type=int, default=5_000_000)
    ap.add_argument("--encounters", type=int, default=5_000_000)
    ap.add_argument("--institutions", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="500k referrals and encounters, 2 pairs, 5 s of load")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--port", type=int, default=8931)
    args = ap.parse_args()
    if args.quick:
        args.referrals, args.pairs, args.secs = min(args.referrals, 500_000), 2, 5
        args.encounters = min(args.encounters, 500_000)
    from sqlalchemy.orm import Session

    from yilianti.cockpit import rollup, service
    from yilianti.db import make_engine
    from yilianti.kit import clock

    today = clock.today_local()
    began = time.time()
    print(f"nproc={os.cpu_count()} referrals={args.referrals} encounters={args.encounters} "
          f"institutions={args.institutions} pairs={args.pairs}", flush=True)
    t0 = time.perf_counter()
    url, ids = setup(args.url, args.institutions, args.referrals, today, args.encounters)
    print(f"data: {time.perf_counter() - t0:.0f} s", flush=True)
    engine = make_engine(url, timeouts=False)
    raw_engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    first, last = today - timedelta(days=3 * 365 + 1), today - timedelta(days=1)

    def raw(statements: tuple[str, ...] = RAW) -> None:
        with raw_engine.connect() as c:
            for sql in statements:
                c.execute(text(sql)).fetchall()

    def rebuild() -> None:
        with Session(engine) as db:
            rollup.rebuild(db, first, last, progress=lambda line: None, commit=db.commit)
            db.commit()

    raw()  # warm-up: the referrals in the cache
    pairs = []
    for i in range(args.pairs):
        r, g, a = timed(raw), timed(lambda: raw(GRAIN)), timed(rebuild)
        pairs.append({"raw_s": round(r, 2), "rebuild_s": round(a, 2), "ratio": round(a / r, 2),
                      "grain_ratio": round(a / g, 2)})
        print(f"pair {i + 1}: raw GROUP BY {r:.2f} s, at the rollups' grain {g:.2f} s, rollup rebuild {a:.2f} s, "
              f"ratio {a / r:.2f} (to the grain's {a / g:.2f})", flush=True)
    ratio = statistics.median(p["ratio"] for p in pairs)
    grain_ratio = statistics.median(p["grain_ratio"] for p in pairs)

    # a day's refresh rebuilds its month (rollups are monthly): yesterday's month so far, and — the worst case, on
    # the first of a month — the whole of last month
    month_end = last.replace(day=1) - timedelta(days=1)
    times: dict[str, list[float]] = {"yesterday": [], "last day of last month": []}
    for _ in range(5):
        for what, day in (("yesterday", last), ("last day of last month", month_end)):
            with Session(engine) as db:
                times[what].append(timed(lambda db=db, day=day: (rollup.build(db, ids["alliances"], day, day),
                                                                 db.commit())))
    for what, ts in times.items():
        print(f"refresh of one day (all alliances), {what}: median {statistics.median(ts):.3f} s, max {max(ts):.3f} s",
              flush=True)
    day_times = times["yesterday"] + times["last day of last month"]

    aid = ids["alliances"][0]
    with Session(engine) as db:
        t_raw = time.perf_counter()
        a = {f.indicator.code: (f.value, f.by_month) for f in service.compute(db, aid, first, last)}
        t_raw = time.perf_counter() - t_raw
        t_roll = time.perf_counter()
        b = {f.indicator.code: (f.value, f.by_month) for f in service.compute(db, aid, first, last, rollups=True)}
        t_roll = time.perf_counter() - t_roll
    same = a.keys() == b.keys() and all(
        (a[k][0] is None) == (b[k][0] is None) and (a[k][0] is None or abs(a[k][0] - b[k][0]) < 1e-6) for k in a)
    print(f"figures from rollups equal the rows: {same} (3 years, one alliance: rows {t_raw:.2f} s, rollups "
          f"{t_roll:.3f} s)", flush=True)

    server = bb.start_server(url, args.port, 2)
    try:
        s, e = f"{today - timedelta(days=365):%Y-%m}", f"{today:%Y-%m}"
        script = LUA % {"alliances": ",".join(map(str, ids["alliances"])), "token": ids["token"], "start": s, "end": e}
        bb.wrk(f"http://127.0.0.1:{args.port}", script, 8, 3)  # warm-up
        load = bb.wrk(f"http://127.0.0.1:{args.port}", script, 50, args.secs)
        # the machine's floor in the same run: the app's liveness route (no database) at the same 50 connections
        floor = bb.wrk(f"http://127.0.0.1:{args.port}", HEALTHZ, 50, args.secs)
    finally:
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    print(f"chart API, 50 viewers: {load['rps']:.0f} req/s, p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
          f"status {load['status']}; /healthz on the same server: {floor['rps']:.0f} req/s, p50 {floor['p50_ms']:.1f} ms, "
          f"p99 {floor['p99_ms']:.1f} ms", flush=True)
    print(f"B5 summary: rebuild/raw median ratio {ratio:.2f} (target ≤ 1.5; to the grain's GROUP BY "
          f"{grain_ratio:.2f}); day refresh max "
          f"{max(day_times):.3f} s (≤ 1 s); equal {same}; chart API p99 {load['p99_ms']:.1f} ms (≤ 50 ms); "
          f"{time.time() - began:.0f} s in all", flush=True)
    engine.dispose()
    raw_engine.dispose()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
