"""B3: the order-time recognised-result lookup over HTTP, as a ratio to `pg_reference.sh select 8`.

    python bench/recognition.py [--patients 1000000] [--results 10000000] [--pairs 3] [--secs 10] [--quick]
                                [--keep] [--reuse] [--no-fast] [--mix lookup|record|both]

Needs: a local PostgreSQL (trust auth), `wrk`, pgbench and ../shared/bench/pg_reference.sh.
Creates the database `ylt_bench_recognition` and drops it at the end (`--keep` leaves it, with the
token and ids in its table `bench_meta`; `--reuse` runs on the kept database instead of building it).
`--no-fast` runs the server with YILIANTI_RECOGNITION_FAST_PATH=false (the ORM reference route).

Data (bulk INSERT … SELECT, sized by the flags): patients registered at 香河县人民医院 with a
sharing consent, each also registered at the Beijing hospital that looks them up; results spread
over ten items (a third of them thyroid panels with three observations each — FT3/FT4/TSH), from
香河 (QC-qualified in 京津冀), another qualified member and an unqualified one, reported over the
past 200 days; the 京津冀 region scope with validity windows. Every request is
`GET /api/v1/recognition/lookup?patient_id=<random>&item_code=TFT` with the Beijing doctor's
API token: the access check (care relationship + consent), the audit row of the read (queued and
written by COPY at least every second on the fast path — DOMAIN.md §4b; in the request's
transaction on the reference route), the scope/QC/validity rules and the values.

B3 is "shared-record AND recognised-result lookup": `--mix record` measures
`GET /api/v1/patients/<random>/record` with the same token instead (the access check, every
member's entries newest first with HR marks — the patient's ~10 results, their observations and
reports, referrals, bookings … — and the read's audit row); `--mix both` (the default) measures the
two one after the other, each with its own interleaved reference pairs and paced p99 run.

Protocol (PERFORMANCE.md): warm-up, then pairs of (reference, app at max rate) interleaved; the
ratio is the median of per-pair app req/s ÷ reference tps; then one run at ~60 % of the app's
max rate (wrk with a per-request delay) for the p99 target (≤ 50 ms).
"""

from __future__ import annotations

import argparse
import json
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

DBNAME = "ylt_bench_recognition"
PATHS = {"lookup": '"/api/v1/recognition/lookup?patient_id=" .. p .. "&item_code=TFT"',
         "record": '"/api/v1/patients/" .. p .. "/record"'}
AUDITED = {"lookup": "recognition_lookup", "record": "shared_record"}
CODES = ("TFT", "CBC", "LFT", "RFT", "LIPID", "GLU", "HBA1C", "TM4", "CT-CHEST", "DR-CHEST")

LUA = """
local pmin, pmax = %(pmin)d, %(pmax)d
local token = "%(token)s"
local pause = %(delay)d
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6)) end
function request()
  local p = math.random(pmin, pmax)
  return wrk.format("GET", %(path)s, {["Authorization"] = "Bearer " .. token})
end
function delay() return pause end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for _, code in ipairs({200, 401, 403, 404, 409, 422, 500, 503}) do
      local v = t:get("c" .. code)
      if v then total[code] = (total[code] or 0) + v end
    end
  end
  io.write("STATUS")
  for code, v in pairs(total) do io.write(" " .. code .. "=" .. v) end
  io.write("\\n")
end
"""


def setup(base_url: str, patients: int, results: int) -> tuple[str, str, dict[str, int]]:
    url = bb.fresh_database(base_url, DBNAME)
    from sqlalchemy.orm import sessionmaker

    from yilianti.auth import service as auth
    from yilianti.auth.security import new_api_token
    from yilianti.db import make_engine
    from yilianti.models import ApiToken, Institution
    from yilianti.recognition import catalogue, service

    engine = make_engine(url, timeouts=False)  # the bulk load runs past the request timeouts
    with sessionmaker(bind=engine)() as db:
        xh = Institution(name="香河县人民医院", kind="general", province="河北", city="廊坊")
        lf = Institution(name="廊坊市人民医院", kind="general", province="河北", city="廊坊")
        other = Institution(name="未参加质控的医院", kind="general", province="河北", city="保定")
        bj = Institution(name="北京朝阳医院", kind="general", level=3, province="北京", city="北京")
        db.add_all([xh, lf, other, bj])
        db.flush()
        user = auth.create_user(db, None, "bench-bj-doctor", "Bench2026!", "基准医生", [("doctor", bj.id, None)])
        token, prefix, hashed = new_api_token()
        db.add(ApiToken(user_id=user.id, institution_id=bj.id, name="bench", prefix=prefix, token_hash=hashed))
        service.create_scope(db, None, code="JJJ", name="京津冀", kind="region",
                             areas=[("北京", None), ("天津", None), ("河北", None)])
        year = datetime.now(UTC).year
        rows = ["item_code,item_name,kind,codes,price_yuan,scope_code,valid_days,institution,qc_from,qc_to"]
        for code in CODES:
            kind = "imaging" if code.startswith(("CT", "DR")) else "lab"
            days = 60 if code == "TFT" else 180 if kind == "imaging" else 30
            for inst in (xh.name, lf.name):
                rows.append(f"{code},{code},{kind},LAB-{code},100,JJJ,{days},{inst},{year - 1}-01-01,{year}-12-31")
        catalogue.import_catalogue(db, None, catalogue.read_rows("\n".join(rows).encode()))
        db.commit()
        ids = {"xh": xh.id, "lf": lf.id, "other": other.id, "bj": bj.id}
    started = time.perf_counter()
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO patient (name, sex, birth_date, registered_by_institution_id, active, created_at) "
            "SELECT '患者' || g, CASE WHEN g % 2 = 0 THEN '女' ELSE '男' END, DATE '1950-01-01' + (g % 20000), "
            ":xh, true, now() FROM generate_series(1, :n) g"), {"xh": ids["xh"], "n": patients})
        ids["pmin"], ids["pmax"] = c.execute(text("SELECT min(id), max(id) FROM patient")).one()
        for inst in (ids["xh"], ids["bj"]):
            c.execute(text("INSERT INTO care_relationship (patient_id, institution_id, kind, started_at, created_at) "
                           "SELECT id, :inst, 'registered', now(), now() FROM patient"), {"inst": inst})
        c.execute(text("INSERT INTO consent (patient_id, scope, granted_at, created_at) "
                       "SELECT id, 'all', now() - interval '1 year', now() FROM patient"))
        # results: patient = g mod P, item round-robin, source: 香河 60 %, 廊坊 25 %, unqualified 15 %
        c.execute(text(f"""
            INSERT INTO diagnostic_order (accession_number, patient_id, ordering_institution_id,
                reading_centre_institution_id, performing_institution_id, kind, item_code, item_name, status,
                priority, ordered_at, reported_at, updated_at, created_at)
            SELECT 'B' || g, :pmin + (g % :np), src, src, src,
                   CASE WHEN c IN ('CT-CHEST', 'DR-CHEST') THEN 'imaging' ELSE 'lab' END,
                   'LAB-' || c, c, 'final', 'routine', t, t, t, t
            FROM (SELECT g,
                         (ARRAY{list(CODES)!r}::text[])[1 + (g / 7) % 10] AS c,
                         CASE WHEN g % 20 < 12 THEN :xh WHEN g % 20 < 17 THEN :lf ELSE :other END AS src,
                         now() - ((g % 200) || ' days')::interval - ((g % 1440) || ' minutes')::interval AS t
                  FROM generate_series(1, :nr) g) s"""),
                  {"pmin": ids["pmin"], "np": patients, "xh": ids["xh"], "lf": ids["lf"], "other": ids["other"],
                   "nr": results})
        c.execute(text("""
            INSERT INTO lab_observation (order_id, set_id, code, name, value, units, observed_at, created_at)
            SELECT o.id, v.n, v.code, v.name, v.value, v.units, o.reported_at, o.reported_at
            FROM diagnostic_order o
            CROSS JOIN (VALUES (1, '3051-0', 'FT3', '4.6', 'pmol/L'), (2, '3024-7', 'FT4', '14.8', 'pmol/L'),
                               (3, '3016-3', 'TSH', '2.1', 'mIU/L')) AS v(n, code, name, value, units)
            WHERE o.item_code = 'LAB-TFT'"""))
        c.execute(text("ANALYZE"))
        c.execute(text("CREATE TABLE bench_meta (k text PRIMARY KEY, v text)"))
        for k, v in {**ids, "token": token, "patients": patients, "results": results}.items():
            c.execute(text("INSERT INTO bench_meta VALUES (:k, :v)"), {"k": k, "v": str(v)})
    print(f"data: {patients} patients, {results} results in {time.perf_counter() - started:.0f} s", flush=True)
    engine.dispose()
    return url, token, ids


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--results", type=int, default=10_000_000)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reuseport", action="store_true",
                    help="serve with `yilianti serve` (--workers SO_REUSEPORT processes) instead of uvicorn --workers")
    ap.add_argument("--quick", action="store_true", help="100k patients, 1M results, 2 pairs × 5 s")
    ap.add_argument("--port", type=int, default=8793)
    ap.add_argument("--keep", action="store_true", help="leave the database for --reuse")
    ap.add_argument("--reuse", action="store_true", help="run on the database a --keep run left")
    ap.add_argument("--no-fast", action="store_true", help="the ORM reference route (fast path off)")
    ap.add_argument("--mix", choices=("lookup", "record", "both"), default="both",
                    help="the recognised-result lookup, the shared-record read, or both (B3 covers both)")
    args = ap.parse_args()
    if args.quick:
        args.patients, args.results, args.pairs, args.secs = 100_000, 1_000_000, 2, 5
    if args.reuse:
        url = f"{args.url}/{DBNAME}"
        with create_engine(url.replace("postgresql://", "postgresql+psycopg://")).connect() as c:
            meta = {k: v for k, v in c.execute(text("SELECT k, v FROM bench_meta"))}
        token = meta.pop("token")
        ids = {k: int(v) for k, v in meta.items()}
        args.patients, args.results = ids["patients"], ids["results"]
        print(f"reusing {DBNAME}: {args.patients} patients, {args.results} results", flush=True)
    else:
        url, token, ids = setup(args.url, args.patients, args.results)
    args.url_db = url
    if args.no_fast:
        os.environ["YILIANTI_RECOGNITION_FAST_PATH"] = "false"
        os.environ["YILIANTI_RECORD_FAST_PATH"] = "false"
    server = bb.start_server(url, args.port, args.workers, reuseport=args.reuseport)
    runs: list[dict[str, object]] = []
    before: dict[str, int] = {}
    base = f"http://127.0.0.1:{args.port}"
    mixes = ["lookup", "record"] if args.mix == "both" else [args.mix]
    out: dict[str, object] = {"at": datetime.now(UTC).isoformat(timespec="minutes"), "nproc": os.cpu_count(),
                              "load_start": os.getloadavg(), "patients": args.patients, "results": args.results,
                              "clients": args.clients, "workers": args.workers, "reuseport": args.reuseport,
                              "fast_path": not args.no_fast,
                              "mixes": {}}
    try:
        for mix in mixes:
            print(f"== {mix}: GET {PATHS[mix]}", flush=True)
            out["mixes"][mix] = _measure(base, mix, ids, token, args, runs)  # type: ignore[index]
        with create_engine(url.replace("postgresql://", "postgresql+psycopg://")).connect() as c:
            for mix in mixes:
                before[mix] = int(c.execute(text("SELECT count(*) FROM audit_event WHERE resource_type = :r"),
                                            {"r": AUDITED[mix]}).scalar() or 0)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    out["load_end"] = os.getloadavg()
    try:
        # after the shutdown: the batched read audits are all written by then
        with create_engine(url.replace("postgresql://", "postgresql+psycopg://")).connect() as c:
            for mix in mixes:
                n = int(c.execute(text("SELECT count(*) FROM audit_event WHERE resource_type = :r"),
                                  {"r": AUDITED[mix]}).scalar() or 0)
                out[f"audit_rows_{mix}"] = n
                print(f"audit rows ({AUDITED[mix]}): {n} ({before.get(mix)} before the server stopped)")
        out["ok_requests"] = sum(int(r["status"].get(200, 0)) for r in runs)  # type: ignore[attr-defined]
        print(f"200 answers in all runs (warm-up and paced included): {out['ok_requests']}")
    finally:
        if not args.keep:
            admin = create_engine(args.url + "/postgres", isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)"))
            admin.dispose()
    return _written(out)


def statement_only(url: str, mix: str, ids: dict[str, int], clients: int, secs: int) -> dict[str, float]:
    """The fast path's statement alone (recognition/fastpath.py LOOKUP, record/fastpath.py RECORD), by pgbench
    with the parameters the app sends, the same generic plan and time zone: the most the route could reach if
    HTTP, JSON, Python and the (batched) read audit cost nothing."""
    import re
    import subprocess
    import tempfile

    from sqlalchemy.engine import make_url

    from yilianti.recognition.fastpath import LOOKUP
    from yilianti.record.fastpath import KINDS, RECORD

    with create_engine(url.replace("postgresql://", "postgresql+psycopg://")).connect() as c:
        user = int(c.execute(text("SELECT id FROM app_user WHERE username = 'bench-bj-doctor'")).scalar_one())
    common = {1: ":pid", 2: str(ids["bj"]), 3: str(user), 4: "now()", 5: "(now() AT TIME ZONE 'Asia/Shanghai')::date"}
    if mix == "lookup":  # TFT: valid 60 days in the region scope; its codes as the catalogue snapshot has them
        sql, values = LOOKUP, {**common, 6: "ARRAY['TFT', 'LAB-TFT']", 7: "(now() - interval '61 days')"}
    else:
        sql, values = RECORD, {**common, 6: "ARRAY[" + ", ".join(f"'{k}'" for k in KINDS) + "]"}
    sql = " ".join(re.sub(r"\$(\d+)", lambda m: values[int(m.group(1))], sql).split())
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        fh.write(f"\\set pid random({ids['pmin']}, {ids['pmax']})\n{sql};\n")
        path = fh.name
    u = make_url(url)
    env = dict(os.environ, PGOPTIONS="-c plan_cache_mode=force_generic_plan -c timezone=UTC")
    proc = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(secs),
                           "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
                           "-f", path, u.database or DBNAME], capture_output=True, text=True, env=env)
    os.unlink(path)
    out = proc.stdout + proc.stderr
    tps = re.search(r"tps = ([\d.]+)", out)
    if tps is None:
        print(f"statement alone failed: {out[-500:]}", flush=True)
    return {"tps": float(tps.group(1)) if tps else float("nan")}


def _measure(base: str, mix: str, ids: dict[str, int], token: str, args: argparse.Namespace,
             runs: list[dict[str, object]]) -> dict[str, object]:
    """Warm-up, `args.pairs` interleaved (reference, app at max rate) pairs, one paced run at ~60 %."""
    def script(delay: int) -> str:
        return LUA % {"pmin": ids["pmin"], "pmax": ids["pmax"], "token": token, "delay": delay, "path": PATHS[mix]}

    runs.append(bb.wrk(base, script(0), args.clients, 3))  # warm-up
    pairs = []
    for i in range(args.pairs):
        ref = bb.reference("select", 8, args.secs)
        app = bb.wrk(base, script(0), args.clients, args.secs)
        runs.append(app)
        ratio = float(app["rps"]) / ref["tps"]  # type: ignore[arg-type]
        alone = statement_only(args.url_db, mix, ids, 8, args.secs) if not args.no_fast else {"tps": float("nan")}
        pairs.append({"ref": ref, "app": app, "ratio": ratio, "statement_alone": alone,
                      "statement_ratio": alone["tps"] / ref["tps"]})
        print(f"{mix} pair {i}: app {app['rps']:.0f} req/s p50 {app['p50_ms']:.1f} ms p99 {app['p99_ms']:.1f} ms "
              f"status {app['status']} | ref {ref['tps']:.0f} tps p99 {ref['p99_ms']:.2f} ms | "
              f"ratio {ratio:.3f} | statement alone {alone['tps']:.0f} tps = {alone['tps'] / ref['tps']:.3f} "
              f"of the reference", flush=True)
    max_rps = statistics.median(float(p["app"]["rps"]) for p in pairs)  # type: ignore[index]
    mean_ms = statistics.median(float(p["app"]["p50_ms"]) for p in pairs)  # type: ignore[index]
    # each connection waits `delay` ms between its requests: rate ≈ clients / (latency + delay)
    delay = max(1, int(args.clients * 1000 / (0.6 * max_rps) - mean_ms))
    paced = bb.wrk(base, script(delay), args.clients, args.secs)
    runs.append(paced)
    median_ratio = statistics.median(p["ratio"] for p in pairs)  # type: ignore[misc]
    print(f"{mix} paced at {float(paced['rps']) / max_rps:.0%} of max ({paced['rps']:.0f} req/s): "
          f"p50 {paced['p50_ms']:.1f} ms p99 {paced['p99_ms']:.1f} ms status {paced['status']}")
    print(f"{mix} median ratio {median_ratio:.3f} (target ≥ 0.20); p99 at ~60 % {paced['p99_ms']:.1f} ms "
          f"(target ≤ 50)", flush=True)
    return {"pairs": pairs, "median_ratio": median_ratio,
            "paced": {"delay_ms": delay, **paced, "share_of_max": float(paced["rps"]) / max_rps}}


def _written(out: dict[str, object]) -> int:
    path = Path(__file__).resolve().parent / "out" / f"recognition-{datetime.now(UTC):%Y%m%dT%H%M}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1, default=str))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
