"""`Patient/$match` latency at N persons (issue 21: p99 ≤ 100 ms at 1 M), over HTTP against `yilianti serve`.

    flock /tmp/bench.lock nice .venv/bin/python bench/fhir_match.py --persons 1000000 --requests 1000 --clients 2

The persons are the EMPI benchmark's (bench/empi/online.py `prepare`: the generator of bench/empi/generate.py,
seed 6, bulk-loaded with COPY — patient, resident-ID identifier, source record with its blocking keys); with
`--reuse` (default) the database `ylt_bench_empi_<N>` is loaded once and kept. One bench institution is given a
care relationship with every person (so the visibility check of $match passes and the whole answer is built)
and a doctor's API token. Requests, from `--clients` threads with keep-alive, alternate between
- by identifier: a sampled person's resident ID (a certain match through the identifier index),
- by demographics: the same person's record at another source with the generator's errors (name, sex, birth
  date, phone, address) and no identifier: blocking + the online rules (probable / possible grades);
each a Parameters body POSTed to /fhir/Patient/$match (count 5). Reported: p50/p95/p99 per kind and overall,
requests/s, how many answers held the sampled person (the first entry), non-200 answers. The web server is one
`yilianti serve` process (`--workers` to change), PostgreSQL on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.orm import sessionmaker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench" / "empi"))

import online as empi_bench  # noqa: E402  (bench/empi/online.py: the 1 M persons' loader)
from generate import SOURCES, Gen  # noqa: E402

SID = "https://yilianti.org/fhir/sid/"
GENDER = {"男": "male", "女": "female"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def grant_all(url: str) -> tuple[int, str]:
    """The bench institution, a care relationship with every person (once), and a doctor's API token."""
    from yilianti import db as dbmod
    from yilianti.auth import repository as auth_repo
    from yilianti.auth import service as auth_service
    from yilianti.auth.security import new_api_token
    from yilianti.models import ApiToken
    from yilianti.models.alliance import Institution

    pg = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(pg) as conn:
        row = conn.execute("SELECT id FROM institution WHERE name = 'FHIR匹配基准医院'").fetchone()
    engine = dbmod.make_engine(url, timeouts=False)
    factory = sessionmaker(bind=engine)
    with factory() as db:
        if row is None:
            inst = Institution(name="FHIR匹配基准医院", kind="general", level=2, province="河北")
            db.add(inst)
            db.flush()
            auth_service.create_user(db, None, "fhir-match-bench", "Bench-pass-21", "匹配基准医生",
                                     [("doctor", inst.id, None)])
            inst_id = inst.id
        else:
            inst_id = int(row[0])
        user = auth_repo.user_named(db, "fhir-match-bench")
        assert user is not None
        token, prefix, hashed = new_api_token()
        db.add(ApiToken(user_id=user.id, institution_id=inst_id, name="bench", prefix=prefix, token_hash=hashed))
        db.commit()
    engine.dispose()
    with psycopg.connect(pg) as conn:
        done = conn.execute("SELECT count(*) FROM care_relationship WHERE institution_id = %s", (inst_id,)).fetchone()
        if not done or done[0] == 0:
            t0 = time.monotonic()
            conn.execute("INSERT INTO care_relationship (patient_id, institution_id, kind, started_at, created_at) "
                         "SELECT id, %s, 'registered', now(), now() FROM patient", (inst_id,))
            conn.commit()
            conn.autocommit = True
            conn.execute("ANALYZE care_relationship")
            print(f"care relationships for every person in {time.monotonic() - t0:.0f}s", flush=True)
    return inst_id, token


def bodies(sample: list[dict[str, Any]], n: int) -> list[tuple[str, int, dict[str, Any]]]:
    """(kind, expected patient id, Parameters) — by identifier and by demographics, alternating."""
    g = Gen(2112)
    out: list[tuple[str, int, dict[str, Any]]] = []
    for i in range(n):
        p = sample[i % len(sample)]
        if i % 2 == 0:
            patient: dict[str, Any] = {"resourceType": "Patient",
                                       "identifier": [{"system": f"{SID}cn-ric", "value": p["rid"]}]}
            out.append(("identifier", p["pid"], patient))
            continue
        form = empi_bench._clean(g.record(p, g.r.choice(SOURCES)), p)  # noqa: SLF001 - the loader's own form
        assert form is not None
        patient = {"resourceType": "Patient", "name": [{"text": form["name"]}], "birthDate": form["birth_date"]}
        if form["sex"] in GENDER:
            patient["gender"] = GENDER[form["sex"]]
        if form["phone"]:
            patient["telecom"] = [{"system": "phone", "value": form["phone"]}]
        if form["address"]:
            patient["address"] = [{"text": form["address"]}]
        out.append(("demographics", p["pid"], patient))
    return [(k, pid, {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": r}, {"name": "count", "valueInteger": 5}]}) for k, pid, r in out]


def drive(base: str, token: str, work: list[tuple[str, int, dict[str, Any]]], clients: int
          ) -> tuple[dict[str, list[float]], dict[str, int], float]:
    lat: dict[str, list[float]] = {"identifier": [], "demographics": []}
    counts = {"found_first": 0, "non_200": 0}
    lock = threading.Lock()
    parts = [work[i::clients] for i in range(clients)]

    def run(chunk: list[tuple[str, int, dict[str, Any]]]) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            for kind, pid, body in chunk:
                t0 = time.perf_counter()
                r = c.post("/fhir/Patient/$match", json=body)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    lat[kind].append(ms)
                    if r.status_code != 200:
                        counts["non_200"] += 1
                    elif (r.json().get("entry") or [{}])[0].get("resource", {}).get("id") == str(pid):
                        counts["found_first"] += 1

    threads = [threading.Thread(target=run, args=(p,)) for p in parts]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, counts, time.monotonic() - started


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="web processes of `yilianti serve`")
    ap.add_argument("--admin-url", default=os.environ.get("YILIANTI_BENCH_PG",
                                                          "postgresql://postgres@127.0.0.1:5432/postgres"))
    a = ap.parse_args()
    print(f"nproc={os.cpu_count()} persons={a.persons:,} requests={a.requests} clients={a.clients} "
          f"load={os.getloadavg()} at {datetime.now(UTC):%Y-%m-%dT%H:%M}Z", flush=True)
    admin = psycopg.connect(a.admin_url, autocommit=True)
    url, sample, _insts, load_s = empi_bench.prepare(admin, a.admin_url, a.persons, reuse=True)
    admin.close()
    _inst, token = grant_all(url)
    env = {**os.environ, "YILIANTI_DATABASE_URL": url, "YILIANTI_RUN_JOBS_IN_PROCESS": "false",
           "YILIANTI_ACCESS_LOG": "false", "YILIANTI_PORT": str(free_port()), "YILIANTI_WEB_PROCESSES": str(a.workers)}
    base = f"http://127.0.0.1:{env['YILIANTI_PORT']}"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "yilianti"), "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        work = bodies(sample, a.warmup + a.requests)
        drive(base, token, work[:a.warmup], a.clients)
        lat, counts, seconds = drive(base, token, work[a.warmup:], a.clients)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    every = lat["identifier"] + lat["demographics"]
    print(f"\n{a.persons:,} persons (loaded in {load_s:.0f}s; 0 = reused), {len(every)} $match requests in "
          f"{seconds:.1f}s = {len(every) / seconds:.1f}/s from {a.clients} clients, {a.workers} web process(es)")
    print("| kind | n | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for kind, values in (*lat.items(), ("all", every)):
        if values:
            print(f"| {kind} | {len(values)} | {pct(values, 50):.1f} | {pct(values, 95):.1f} | {pct(values, 99):.1f} | "
                  f"{max(values):.1f} |")
    print(f"sampled person first: {counts['found_first']}/{len(every)}; non-200: {counts['non_200']}")
    print(f"load={os.getloadavg()} at {datetime.now(UTC):%Y-%m-%dT%H:%M}Z")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
