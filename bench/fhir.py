"""FHIR read and search throughput as a ratio to the platform's own JSON API on the same records (issue 21).

Registers N patients at one township centre (each with a resident ID and a phone, through the registration
service, so the EMPI and the care relationship are as in production), starts `yilianti serve`, and drives it
with C client threads (keep-alive, a doctor's API token): for each pair, T seconds of the JSON API then T
seconds of FHIR (the order alternating between pairs), on the same records:

- read:   GET /api/v1/patients/{id}            vs  GET /fhir/Patient/{id}
- search: GET /api/v1/patients?q=<surname>&limit=20  vs  GET /fhir/Patient?name=<surname>&_count=20

Both are audited reads through authz.policy. Ratio = FHIR requests/s ÷ JSON requests/s, median of the pairs
(target ≥ 0.7).

    .venv/bin/python bench/fhir.py [--database-url postgresql://…] [--patients 500] [--pairs 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SURNAMES = "王李张刘陈杨赵黄周吴"
_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def resident_id(k: int) -> str:
    birth = date(1950 + k % 60, 1 + k % 12, 1 + k % 28)
    body = f"{110101 + k // 1000:06d}{birth:%Y%m%d}{k % 1000:03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _W, strict=True)) % 11]


def setup(n: int) -> tuple[str, list[int]]:
    from yilianti import db as dbmod
    from yilianti.auth import service as auth_service
    from yilianti.auth.security import new_api_token
    from yilianti.migrate import upgrade
    from yilianti.models import ApiToken
    from yilianti.models.alliance import Institution
    from yilianti.patients import service as patients
    from yilianti.patients.schemas import RegistrationIn

    upgrade(os.environ["YILIANTI_DATABASE_URL"])
    rng = random.Random(21)
    with dbmod.session_factory()() as db:
        inst = Institution(name="渠口镇卫生院(FHIR基准)", kind="township", level=1, province="河北")
        db.add(inst)
        db.flush()
        user = auth_service.create_user(db, None, "fhir-bench", "bench-password-21", "基准医生",
                                        [("doctor", inst.id, None)])
        subject = auth_service.build_subject(db, user, inst.id)
        token, prefix, hashed = new_api_token()
        db.add(ApiToken(user_id=user.id, institution_id=inst.id, name="bench", prefix=prefix, token_hash=hashed))
        ids = []
        for k in range(n):
            name = rng.choice(SURNAMES) + rng.choice("伟芳娜敏静丽强磊军洋") + rng.choice("明华平刚兰")
            reg = patients.register(db, subject, RegistrationIn(
                name=name, sex="未知", resident_id=resident_id(k), phone=f"139{k:08d}", consent_scope="none"))
            ids.append(reg.patient.id)
        db.commit()
    return token, ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(base: str, token: str, paths: list[str], seconds: float, clients: int) -> float:
    """Requests per second answered 200 by `clients` threads cycling through `paths` for `seconds`."""
    done, failed = [0] * clients, [0] * clients
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            while time.monotonic() < stop:
                if c.get(rng.choice(paths)).status_code == 200:
                    done[i] += 1
                else:
                    failed[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(failed):
        print(f"  {sum(failed)} requests failed on {paths[0]}", file=sys.stderr)
    return sum(done) / (time.monotonic() - started)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="")
    ap.add_argument("--patients", type=int, default=500)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    var = tempfile.mkdtemp(prefix="ylt-bench-fhir-")
    env = {**os.environ, "YILIANTI_VAR_DIR": var, "YILIANTI_RUN_JOBS_IN_PROCESS": "false",
           "YILIANTI_ACCESS_LOG": "false", "YILIANTI_SECRET_KEY": "bench-secret",
           "YILIANTI_PASSWORD_HASH_COST": "minimal",
           "YILIANTI_DATABASE_URL": args.database_url or f"sqlite:///{var}/bench.db", "YILIANTI_PORT": str(free_port())}
    os.environ.update(env)
    t0 = time.perf_counter()
    token, ids = setup(args.patients)
    print(f"{args.patients} patients registered in {time.perf_counter() - t0:.0f} s "
          f"({env['YILIANTI_DATABASE_URL'].split(':')[0]})", file=sys.stderr)
    base = f"http://127.0.0.1:{env['YILIANTI_PORT']}"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "yilianti"), "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        workloads = {
            "read": ([f"/api/v1/patients/{i}" for i in ids], [f"/fhir/Patient/{i}" for i in ids]),
            "search": ([f"/api/v1/patients?q={s}&limit=20" for s in SURNAMES],
                       [f"/fhir/Patient?name={s}&_count=20" for s in SURNAMES]),
        }
        print(f"{'workload':8} {'pair':>4} {'JSON req/s':>11} {'FHIR req/s':>11} {'ratio':>6}")
        for name, (json_paths, fhir_paths) in workloads.items():
            load(base, token, json_paths + fhir_paths, 1.0, args.clients)  # warm both
            ratios = []
            for pair in range(args.pairs):
                if pair % 2 == 0:
                    js = load(base, token, json_paths, args.seconds, args.clients)
                    fh = load(base, token, fhir_paths, args.seconds, args.clients)
                else:
                    fh = load(base, token, fhir_paths, args.seconds, args.clients)
                    js = load(base, token, json_paths, args.seconds, args.clients)
                ratios.append(fh / js)
                print(f"{name:8} {pair + 1:4} {js:11.1f} {fh:11.1f} {fh / js:6.2f}")
            print(f"{name:8} median ratio {statistics.median(ratios):.2f} (target ≥ 0.7)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
