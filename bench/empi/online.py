"""B6 online: registrations/s through the real registration service at N persons (PostgreSQL).

    .venv/bin/python bench/empi/online.py --persons 100000 1000000 --registrations 2000 --clients 4

For each size: a fresh database (migrations), N persons bulk-loaded with COPY (patient,
resident-ID identifier, source record with its blocking keys — one registration each, with
the generator's realistic errors), ANALYZE; then `--registrations` registrations through
`patients.service.register` (match on register: deterministic ID, else rules v1 on blocked
candidates; care relationship, identifiers, audit), each its own committed transaction, from
`--clients` threads: half are the same persons registering at another member (with new
errors), half new persons. Reported: registrations/s, p50/p99 latency, how each was placed,
and against the generator's truth the false links (joined a different person) and missed
links among the returning half. Target (PERFORMANCE.md): ≥ 100/s at 1 M, cost flat in N.
The databases are dropped afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from generate import SOURCES, Gen  # noqa: E402
from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from yilianti import db as dbmod  # noqa: E402
from yilianti.auth import service as auth_service  # noqa: E402
from yilianti.empi import normalise as norm  # noqa: E402
from yilianti.empi import online  # noqa: E402
from yilianti.kit import crypto  # noqa: E402
from yilianti.migrate import upgrade  # noqa: E402
from yilianti.models.alliance import Institution  # noqa: E402
from yilianti.models.patient import Patient  # noqa: E402
from yilianti.patients import service as patients  # noqa: E402


def _fast_birth_place() -> Callable[[], None]:
    """Bulk loading only: stdnum's birth-place lookup depends on region and year alone; memoise it."""
    from functools import lru_cache

    from stdnum.cn import ric

    original = ric.get_birth_place
    cached = lru_cache(maxsize=None)(lambda region, year: original(f"{region}{year}0101001"))  # noqa: B023

    def lookup(number: str) -> dict[str, str]:
        number = ric.compact(number)
        return cached(number[:6], number[6:10])

    ric.get_birth_place = lookup

    def restore() -> None:
        ric.get_birth_place = original
    return restore


def _clean(rec: dict[str, str], person: dict[str, Any]) -> dict[str, Any] | None:
    """A generator record as a registration clerk's validated form (invalid IDs dropped)."""
    name = norm.name(rec["name"]) if rec["name"].strip() else person["name"]
    raw_id = norm.nfkc(rec["id_number"]).upper()
    if raw_id == person["rid"]:
        rid: str | None = raw_id  # valid by construction (the generator validated it)
    else:
        rid, _weak = norm.id_number(rec["id_number"]) if rec["id_number"] else (None, None)
    birth = norm.birth_date(rec["birth_date"]) if rec["birth_date"] else None
    if rid:
        birth = rid[6:14]  # the form checks the birth date against the ID
    birth_iso = f"{birth[:4]}-{birth[4:6]}-{birth[6:]}" if birth else person["birth"].isoformat()
    sex = norm.sex(rec["sex"]) or "未知"
    if rid:
        sex = "男" if int(rid[16]) % 2 else "女"
    phone = norm.phone(rec["phone"]) if rec["phone"] else None
    if phone and not phone.startswith("1"):
        phone = None  # the form takes mobiles only
    return {"name": name.replace(" ", "")[:60] if name else person["name"], "sex": sex, "birth_date": birth_iso,
            "resident_id": rid, "phone": phone, "address": norm.nfkc(rec["address"]) or None,
            "consent_scope": "none"}


def _copy(conn: psycopg.Connection, table: str, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def _keys(demo: online.Demographics) -> online.Keys:
    """online.keys(demo.normalised()) without re-validating the (valid) resident ID: bulk load only."""
    nm = norm.name(demo.name)
    sp, gp = norm.name_pinyin(nm) if nm else ("", "")
    birth = demo.birth_date.strftime("%Y%m%d") if demo.birth_date else None
    return online.Keys(name_key=f"{sp}|{gp}" if nm else None, surname_key=sp or None, given_key=gp or None,
                       birth_key=birth, birth_year=int(birth[:4]) if birth else None,
                       phone_key=crypto.blind_index("phone", norm.phone(demo.phone)) if demo.phone else None,
                       rid=demo.rid)


CHUNK = 200_000  # persons generated, encrypted and COPYed at a time (5 M persons do not fit in memory at once)
SAMPLE = 50_000  # loaded persons kept (reservoir) for the returning half of the registrations


def load(url: str, n: int, g: Gen) -> tuple[list[dict[str, Any]], dict[str, int], float]:
    """COPY n persons, CHUNK at a time; returns a sample of the persons (with their patient ids) and the
    institution ids."""
    started = time.monotonic()
    engine = dbmod.make_engine(url, timeouts=False)  # the bulk load runs past the request timeouts
    with sessionmaker(bind=engine)() as db:
        insts = {}
        for name in SOURCES:
            inst = Institution(name=name, kind="general", level=2, province="河北")
            db.add(inst)
            db.flush()
            insts[name] = inst.id
            auth_service.create_user(db, None, f"bench{inst.id}", "Bench-pass-1", f"登记员{inst.id}",
                                     [("doctor", inst.id, None)])
        db.commit()
    engine.dispose()
    restore = _fast_birth_place()  # registrations measured later validate for real
    plain = Gen._region_ok  # a staticmethod: validity depends on the region and the birth year only
    region_ok = lru_cache(maxsize=None)(lambda region, year: plain(region, date(year, 6, 1)))
    g._region_ok = lambda region, birth: region_ok(region, birth.year)  # type: ignore[method-assign]
    now = datetime.now(UTC)
    sample: list[dict[str, Any]] = []
    pid = 0
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        while pid < n:
            pat, ident, recs = [], [], []
            for p in g.persons(min(CHUNK, n - pid)):
                pid += 1
                src = g.r.choice(SOURCES)
                form = _clean(g.record(p, src), p)
                assert form is not None
                p["pid"] = pid
                if len(sample) < SAMPLE:
                    sample.append(p)
                elif (j := g.r.randrange(pid)) < SAMPLE:
                    sample[j] = p
                demo = online.Demographics(form["name"], form["sex"] if form["sex"] in ("男", "女") else None,
                                           datetime.fromisoformat(form["birth_date"]).date(), form["phone"],
                                           form["address"], form["resident_id"])
                k = _keys(demo)
                # the same encrypted + blind-indexed form as the ORM writes (kit/crypto.py), computed here: COPY
                phone_enc = crypto.encrypt(form["phone"]) if form["phone"] else None
                pat.append((pid, form["name"], form["sex"], demo.birth_date, phone_enc,
                            crypto.blind_index("phone", form["phone"]), form["address"], insts[src], True, now))
                if form["resident_id"]:
                    ident.append((pid, "CN-RIC", crypto.encrypt(form["resident_id"]),
                                  crypto.blind_index("id", form["resident_id"]), now))
                recs.append((pid, insts[src], form["name"], demo.sex, demo.birth_date, phone_enc, form["address"],
                             crypto.encrypt(k.rid) if k.rid else None, crypto.blind_index("id", k.rid) if k.rid else None,
                             k.name_key, k.surname_key, k.given_key, k.birth_key, k.birth_year, k.phone_key,
                             "bulk", None, "v1", now, now))
            _copy(conn, "patient", ["id", "name", "sex", "birth_date", "phone_enc", "phone_bidx", "address",
                                    "registered_by_institution_id", "active", "created_at"], pat)
            _copy(conn, "patient_identifier", ["patient_id", "authority", "value_enc", "value_bidx", "created_at"],
                  ident)
            _copy(conn, "patient_record", ["patient_id", "institution_id", "name", "sex", "birth_date", "phone",
                                           "address", "rid", "rid_key", "name_key", "surname_key", "given_key",
                                           "birth_key", "birth_year", "phone_key", "link_method", "link_score",
                                           "rules_version", "updated_at", "created_at"], recs)
            conn.commit()
            print(f"  loaded {pid:,} persons ({time.monotonic() - started:.0f}s)", file=sys.stderr, flush=True)
        for table in ("patient", "patient_identifier", "patient_record"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    restore()
    return sample, insts, time.monotonic() - started


def run(url: str, persons: list[dict[str, Any]], insts: dict[str, int], g: Gen, m: int,
        clients: int, processes: int = 1, loaded: int = 0) -> dict[str, Any]:
    """`m` registrations (50 warm-up, not counted) from `clients` threads in all, spread over `processes`
    processes (as `yilianti serve` runs one web process per core; threads of one process share its GIL)."""
    work: list[tuple[dict[str, Any], int | None]] = []
    fresh = _unused(url, g.persons(m // 2 + 10 + m // 10))[:m // 2 + 10]
    for i in range(m):
        if i % 2 == 0:
            p = g.r.choice(persons)
            work.append((p, p["pid"]))
        else:
            work.append((fresh[i // 2], None))
    # truth: the loaded person's id, or a key of the new person (the same key wherever it registers)
    tag = os.urandom(4).hex()
    jobs = [(g.r.choice(SOURCES), _clean(g.record(p, "x"), p), truth if truth is not None else f"new:{tag}:{i}")
            for i, (p, truth) in enumerate(work)]
    warm, jobs = jobs[:50], jobs[50:]
    _judge(url, loaded, _register(url, insts, warm, 1, None))  # warm-up single-threaded (caches), not counted
    if processes <= 1:
        out = _register(url, insts, jobs, clients, None)
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(processes + 1)
        queue = ctx.Queue()
        children = [ctx.Process(target=_child, args=(url, insts, jobs[i::processes], max(1, clients // processes),
                                                      barrier, queue)) for i in range(processes)]
        for c in children:
            c.start()
        barrier.wait()  # every process has its connections and subjects
        t0 = time.monotonic()
        parts = [queue.get() for _ in children]
        wall = time.monotonic() - t0
        for c in children:
            c.join()
        out = {"lat": [x for p in parts for x in p["lat"]], "placed": sum((Counter(p["placed"]) for p in parts),
                                                                           Counter()),
               "errors": sum((Counter(p["errors"]) for p in parts), Counter()),
               "outcomes": [x for p in parts for x in p["outcomes"]], "wall": wall}
    _judge(url, loaded, out)
    engine = dbmod.make_engine(url, pool_size=1, max_overflow=0)
    with sessionmaker(bind=engine, expire_on_commit=False)() as db:
        sizes = dict(db.execute(text("SELECT 'records', count(*) FROM patient_record")).all())
        for form, pid in out["false_links"][:10]:  # what was wrongly joined, for the record
            other = db.get(Patient, pid)  # the phone is encrypted at rest: read through the model
            assert other is not None
            print(f"  false link: {form['name']} {form['birth_date']} {form['phone']} {form['address']} "
                  f"→ #{pid} {other.name} {other.birth_date} {other.phone} {other.address}", flush=True)
    engine.dispose()
    lat = sorted(out["lat"])
    return {"registrations": len(lat), "seconds": out["wall"], "per_s": len(lat) / out["wall"],
            "p50_ms": statistics.median(lat) * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
            "placed": dict(out["placed"]), "errors": dict(out["errors"]), "records_after": sizes.get("records"),
            "processes": processes}


def _unused(url: str, fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new persons whose resident ID nobody holds yet. Real IDs are unique, but the work generator (another
    seed) does not know the IDs the loaded persons (or an earlier run's) took: a new person given a taken ID
    would be joined to (or refused by) its holder by the deterministic ID rule — a false truth, not a matching
    error. Such persons are skipped (and counted)."""
    keys = {crypto.blind_index("id", p["rid"]): i for i, p in enumerate(fresh) if p.get("rid")}
    with psycopg.connect(url) as conn:
        taken = {r[0] for r in conn.execute(
            "SELECT value_bidx FROM patient_identifier WHERE value_bidx = ANY(%s) "
            "UNION SELECT rid_key FROM patient_record WHERE rid_key = ANY(%s)", (list(keys), list(keys)))}
    drop = {keys[k] for k in taken}
    if drop:
        print(f"  {len(drop)} new persons skipped: their resident ID is already taken", flush=True)
    return [p for i, p in enumerate(fresh) if i not in drop]


def _judge(url: str, loaded: int, out: dict[str, Any]) -> None:
    """Each registration against the truth. A person the bench created (id above the load) stands for the truth
    of the registration that created it, kept in `bench_truth` across runs (--reuse): a returning person whose
    earlier registration was missed (a duplicate person) and who now joins that duplicate is not a false link.
    Sets out["placed"] false_link_new_person / false_link_returning / missed_returning / unverifiable and
    out["false_links"] (form, person id)."""
    placed: Counter[str] = out["placed"]
    created = {pid: str(truth) for truth, outcome, pid, _ in out["outcomes"] if outcome == "new"}
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_truth (patient_id bigint PRIMARY KEY, truth text NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_truth VALUES (%s, %s) ON CONFLICT DO NOTHING", list(created.items()))
        wanted = [pid for _, outcome, pid, _ in out["outcomes"] if outcome != "new" and pid > loaded]
        known = dict(conn.execute("SELECT patient_id, truth FROM bench_truth WHERE patient_id = ANY(%s)",
                                  (wanted,)).fetchall())
    out["false_links"] = []
    for truth, outcome, pid, form in out["outcomes"]:
        if outcome == "new":
            if isinstance(truth, int):
                placed["missed_returning"] += 1
            continue
        actual = str(pid) if pid <= loaded else known.get(pid)
        if actual is None:
            placed["unverifiable"] += 1  # joined a person an earlier run made before bench_truth existed
        elif actual != str(truth):
            placed["false_link_returning" if isinstance(truth, int) else "false_link_new_person"] += 1
            out["false_links"].append((form, pid))


def _child(url: str, insts: dict[str, int], jobs: list[Any], clients: int, barrier: Any, queue: Any) -> None:
    out = _register(url, insts, jobs, clients, barrier)
    queue.put({**out, "placed": dict(out["placed"]), "errors": dict(out["errors"])})


def _register(url: str, insts: dict[str, int], jobs: list[tuple[str, dict[str, Any], int | None]], clients: int,
              barrier: Any) -> dict[str, Any]:
    """Register `jobs` from `clients` threads of this process, each registration its own committed transaction."""
    engine = dbmod.make_engine(url, pool_size=clients, max_overflow=0)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as db:
        from yilianti.models.auth import User

        subjects = {name: auth_service.build_subject(db, db.scalar(select(User).where(
            User.username == f"bench{iid}")), iid) for name, iid in insts.items()}
    lat: list[float] = []
    placed: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    outcomes: list[tuple[int | str, str, int, dict[str, Any]]] = []
    lock = threading.Lock()
    it = iter(range(len(jobs)))

    def worker() -> None:
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            source, form, truth = jobs[i]
            t0 = time.perf_counter()
            with factory() as db:
                try:
                    res = patients.register(db, subjects[source], patients.RegistrationIn.model_validate(form))
                    db.commit()
                    outcome = res.link
                    pid = res.patient.id
                except Exception as exc:  # noqa: BLE001 — counted and reported
                    db.rollback()
                    with lock:
                        errors[type(exc).__name__] += 1
                    continue
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)
                placed[outcome] += 1
                outcomes.append((truth, outcome, pid, form))
                if res.review_candidates:
                    placed["queued_for_review"] += 1

    if barrier is not None:
        barrier.wait()
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    engine.dispose()
    return {"lat": lat, "placed": placed, "errors": errors, "outcomes": outcomes, "wall": wall}


def reference(clients: int, seconds: int = 10) -> dict[str, float]:
    """`pg_reference.sh tx` (BEGIN/UPDATE/INSERT/COMMIT) in the same run: the write-transaction yardstick."""
    import subprocess

    script = Path(__file__).resolve().parents[3] / "shared" / "bench" / "pg_reference.sh"
    if not script.exists():
        return {}
    out = subprocess.run(["bash", str(script), "tx", str(clients), str(seconds)], capture_output=True, text=True,
                         timeout=seconds * 10).stdout.strip().splitlines()
    line = out[-1] if out else ""
    return {k: float(v) for k, v in (p.split("=") for p in line.split() if "=" in p)
            if k in ("tps", "p50_ms", "p99_ms")}


def _state_path(name: str) -> Path:
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}.state.pickle"


def prepare(admin: psycopg.Connection, admin_url: str, n: int, reuse: bool) -> tuple[str, list[dict[str, Any]],
                                                                                     dict[str, int], float]:
    """The database of n persons: loaded afresh, or with --reuse the one a previous --reuse run left
    (its state file holds the sample of loaded persons and the institution ids)."""
    import pickle

    name = f"ylt_bench_empi_{n}"
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    state = _state_path(name)
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
    if reuse and exists and state.exists():
        upgrade(url)  # a new migration since the load applies to the loaded rows
        sample, insts = pickle.loads(state.read_bytes())
        print(f"{n:,} persons: reusing database {name}", flush=True)
        return url, sample, insts, 0.0
    state.unlink(missing_ok=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    upgrade(url)
    sample, insts, load_s = load(url, n, Gen(6))
    print(f"{n:,} persons loaded in {load_s:.0f}s", flush=True)
    if reuse:
        state.write_bytes(pickle.dumps((sample, insts)))
    return url, sample, insts, load_s


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--registrations", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--processes", type=int, default=1,
                    help="registering processes (the clients are spread over them; production runs one web "
                         "process per core)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure the sizes interleaved this many times (5M/1M ratio: median per round)")
    ap.add_argument("--admin-url", default=os.environ.get("YILIANTI_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    ap.add_argument("--reuse", action="store_true",
                    help="load each size once and keep it: later --reuse runs register into it (fresh work seed)")
    ap.add_argument("--load-only", action="store_true", help="with --reuse: prepare the databases, measure nothing")
    ap.add_argument("--work-seed", type=int, default=None,
                    help="seed of the registrations (+ round); default random (printed): on a reused database "
                         "the persons registered by an earlier run must not come again as 'new'")
    a = ap.parse_args()
    print(f"nproc={os.cpu_count()} clients={a.clients} processes={a.processes} registrations={a.registrations} "
          f"load={os.getloadavg()[0]:.2f} at {datetime.now(UTC):%Y-%m-%dT%H:%M}Z", flush=True)
    results = []
    admin = psycopg.connect(a.admin_url, autocommit=True)
    dbs = {n: prepare(admin, a.admin_url, n, a.reuse) for n in a.persons}
    try:
        for rnd in range(0 if a.load_only else a.rounds):
            for n in a.persons:
                url, sample, insts, load_s = dbs[n]
                seed = a.work_seed + rnd if a.work_seed is not None else int.from_bytes(os.urandom(4), "big")
                g = Gen(seed)
                ref = reference(a.clients)
                res = run(url, sample, insts, g, a.registrations, a.clients, a.processes, n)
                res["ref_tx_tps"] = ref.get("tps")
                res["persons"], res["load_s"], res["round"], res["seed"] = n, load_s, rnd, seed
                res["load_avg"] = os.getloadavg()[0]
                results.append(res)
                print(res, flush=True)
    finally:
        for n in a.persons:
            if not (a.keep or a.reuse):
                admin.execute(f'DROP DATABASE IF EXISTS "ylt_bench_empi_{n}" WITH (FORCE)')
        admin.close()
    print("\n| round | persons | registrations | reg/s | ref tx tps | ratio | p50 ms | p99 ms | new | linked by ID | "
          "linked by score | queued for review | false links | missed returning | unverifiable | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        pl = r["placed"]
        ref = r.get("ref_tx_tps")
        ratio = f"{r['per_s'] / ref:.3f}" if ref else "–"
        print(f"| {r['round']} | {r['persons']:,} | {r['registrations']:,} | {r['per_s']:.0f} | {ref or '–'} | {ratio} | "
              f"{r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {pl.get('new', 0)} | {pl.get('resident_id', 0)} | {pl.get('score', 0)} | "
              f"{pl.get('queued_for_review', 0)} | "
              f"{pl.get('false_link_new_person', 0) + pl.get('false_link_returning', 0)} | "
              f"{pl.get('missed_returning', 0)} | {pl.get('unverifiable', 0)} | {sum(r['errors'].values())} |")
    if len(a.persons) > 1:
        lo, hi = min(a.persons), max(a.persons)
        rate = {(r["round"], r["persons"]): r["per_s"] for r in results}
        ratios = [rate[(i, lo)] / rate[(i, hi)] for i in range(a.rounds) if (i, lo) in rate and (i, hi) in rate]
        if ratios:
            print(f"\nslowdown {hi:,} vs {lo:,} persons per round (reg/s at {lo:,} / reg/s at {hi:,}): "
                  f"{', '.join(f'{x:.3f}' for x in ratios)}; median {statistics.median(ratios):.3f}")
    print(f"load={os.getloadavg()[0]:.2f} at {datetime.now(UTC):%Y-%m-%dT%H:%M}Z")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
