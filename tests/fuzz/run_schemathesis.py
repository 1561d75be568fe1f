#!/usr/bin/env python3
"""Schemathesis over the whole OpenAPI, on SQLite and on PostgreSQL, as a session and as an API token.

    .venv/bin/python tests/fuzz/run_schemathesis.py [--examples N] [--max-time S] [--backend sqlite|postgresql]

For each database (SQLite always; PostgreSQL when YILIANTI_TEST_DATABASE_URL is set, in a database of its own
created and dropped here) it migrates, loads the demo data, starts `yilianti serve` on a free port, and runs
schemathesis over every operation of /api/openapi.json twice: logged in through the login form as the demo's
system administrator (cookie + CSRF header), and with an API token of a demo doctor issued through the API.

It fails (exit 1) on any 5xx (`not_a_server_error`) and on any /api/v1 error body outside the contract's
shape (`contract_error_body`, tests/fuzz/hooks.py); the server's own log of unexpected errors is printed.
Bounded: `--examples` per operation and `--max-time` per schemathesis run (CI: .ci/run's fuzz step).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACCOUNT = re.compile(r"demo account: username=(\S+) password=(\S+) role=(\S+) institution=(.+)")

CONFIG = """\
hooks = "tests.fuzz.hooks"
workers = {workers}
max-time = {max_time}
request-timeout = 30
continue-on-failure = true
seed = {seed}

[generation]
max-examples = {examples}
allow-x00 = true
database = "none"
# integers are often the demo's row ids, so that requests reach past "not found" into the services
dictionaries.integer = {{ dictionary = "ids", probability = 0.4 }}

[dictionaries.ids]
values = [{ids}]

[phases.coverage.extra-data-sources]
responses = true

[phases.fuzzing.extra-data-sources]
responses = true

[checks]
enabled = false
not_a_server_error.enabled = true
contract_error_body.enabled = true

[phases.stateful]
enabled = false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A new empty database of the backend; dropped afterwards."""
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="ylt-fuzz-db-")
        try:
            yield f"sqlite:///{folder}/fuzz.db"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from yilianti.config import normalise_db_url

    admin_url = normalise_db_url(os.environ["YILIANTI_TEST_DATABASE_URL"])
    name = f"ylt_fuzz_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load_demo(env: dict[str, str], timeout: float) -> list[tuple[str, str, str, str]] | None:
    """The demo accounts, or None when loading would pass the step's budget."""
    started = time.monotonic()
    try:
        out = subprocess.run([str(BIN / "yilianti"), "load-demo"], env=env, capture_output=True, text=True, cwd=ROOT,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        sys.exit(f"load-demo failed:\n{out.stdout}\n{out.stderr}")
    accounts = [m.groups() for m in map(ACCOUNT.match, out.stdout.splitlines()) if m]
    print(f"  demo data loaded in {time.monotonic() - started:.0f} s ({len(accounts)} accounts)", flush=True)
    return accounts  # type: ignore[return-value]


@contextmanager
def server(env: dict[str, str], log_path: Path) -> Iterator[str]:
    base = f"http://127.0.0.1:{env['YILIANTI_PORT']}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(BIN / "yilianti"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the server did not start:\n{log_path.read_text()}")
                time.sleep(0.3)
            yield base
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def session_identity(base: str, username: str, password: str) -> tuple[httpx.Client, list[str]]:
    """Logged in through the form: the headers a browser's script sends (cookie, CSRF token)."""
    client = httpx.Client(base_url=base, timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert csrf, "no CSRF token on the login page"
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf.group(1),
                                    "next": "/"})
    assert r.status_code in (200, 303), r.text[:500]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/account").text)
    assert csrf, "not logged in"
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return client, [f"Cookie: {cookie}", f"X-CSRF-Token: {csrf.group(1)}"]


def token_identity(admin: httpx.Client, csrf_header: str, username: str, institution: str) -> list[str]:
    """An API token of `username` acting for `institution`, issued through the admin API."""
    csrf = {"X-CSRF-Token": csrf_header.split(": ", 1)[1]}
    users = admin.get("/api/v1/users", params={"q": username}).json()
    user = next(u for u in users["items"] if u["username"] == username)
    inst = next(i for i in admin.get("/api/v1/institutions", params={"q": institution}).json()
                if i["name"] == institution)
    r = admin.post(f"/api/v1/users/{user['id']}/tokens", headers=csrf,
                   json={"institution_id": inst["id"], "name": "schemathesis", "days": 1})
    assert r.status_code == 201, r.text
    return [f"Authorization: Bearer {r.json()['token']}"]


def schemathesis(base: str, headers: list[str], args: argparse.Namespace, workdir: Path, label: str) -> int:
    left = int(args.deadline - time.monotonic()) - 30  # what the whole step may still spend, less the shutdown
    if left < 30:
        print(f"  NOTICE: schemathesis as {label} skipped: the step's budget ({args.budget} s) is spent", flush=True)
        return 0
    max_time = min(args.max_time, left)
    config = workdir / f"{label}.toml"
    config.write_text(CONFIG.format(workers=args.workers, max_time=max_time, examples=args.examples,
                                    seed=args.seed, ids=", ".join(str(i) for i in range(1, 41))))
    command = [str(BIN / "schemathesis"), "--config-file", str(config), "--no-color", "run",
               f"{base}/api/openapi.json", "--report", "junit", "--report-junit-path",
               str(workdir / f"{label}.junit.xml"),
               # the readiness probe answers 503 by design while the queue lags, and the server here runs no jobs
               # (YILIANTI_RUN_JOBS_IN_PROCESS=false): the demo's outbox waits, so /readyz is rightly "not ready"
               "--exclude-path", "/readyz"]
    for header in headers:
        command += ["-H", header]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    print(f"  schemathesis as {label}: {args.examples} examples per operation, at most {max_time} s",
          flush=True)
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    output = result.stdout + result.stderr
    (workdir / f"{label}.log").write_text(output)
    summary = [line for line in output.splitlines()
               if re.search(r"(passed|failed|errors?|operations|test cases|Seed)\b", line) and len(line) < 200]
    print("    " + "\n    ".join(summary[-8:]), flush=True)
    if result.returncode != 0:
        print(output[-20000:], flush=True)
    print(f"    {time.monotonic() - started:.0f} s, exit {result.returncode}", flush=True)
    return result.returncode


def run_backend(backend: str, args: argparse.Namespace) -> int:
    print(f"=== schemathesis on {backend} ===", flush=True)
    workdir = Path(args.report_dir) / backend
    workdir.mkdir(parents=True, exist_ok=True)
    with database(backend) as url:
        var = tempfile.mkdtemp(prefix="ylt-fuzz-var-")
        env = {**os.environ, "YILIANTI_DATABASE_URL": url, "YILIANTI_VAR_DIR": var, "YILIANTI_HOST": "127.0.0.1",
               "YILIANTI_PORT": str(free_port()), "YILIANTI_SECRET_KEY": secrets.token_urlsafe(32),
               "YILIANTI_PASSWORD_HASH_COST": "minimal", "YILIANTI_RUN_JOBS_IN_PROCESS": "false",
               "YILIANTI_ACCESS_LOG": "false", "YILIANTI_WEB_PROCESSES": "1",
               "YILIANTI_LOGIN_MAX_FAILURES": "1000000"}
        try:
            accounts = load_demo(env, timeout=max(1, args.deadline - time.monotonic() - 120))
            if accounts is None:
                print(f"  NOTICE: {backend} skipped: the demo data did not load within the step's budget", flush=True)
                return 0
            admin = next(a for a in accounts if a[2] == "system_admin")
            doctor = next(a for a in accounts if a[2] == "doctor")
            log_path = workdir / "server.log"
            with server(env, log_path) as base:
                client, session = session_identity(base, admin[0], admin[1])
                token = token_identity(client, session[1], doctor[0], doctor[3])
                codes = [schemathesis(base, session, args, workdir, "session"),
                         schemathesis(base, token, args, workdir, "token")]
            unexpected = [line for line in log_path.read_text().splitlines()
                          if "unexpected error on" in line or "integrity error on" in line]
            if unexpected:
                print(f"  the server logged {len(unexpected)} unexpected errors:\n    " + "\n    ".join(
                    sorted(set(unexpected))[:40]), flush=True)
                codes.append(1)
        finally:
            shutil.rmtree(var, ignore_errors=True)
    return max(codes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "25")))
    parser.add_argument("--max-time", type=int, default=int(os.environ.get("FUZZ_MAX_TIME", "120")),
                        help="seconds per schemathesis run (two runs per database)")
    parser.add_argument("--workers", type=int, default=1,
                        help="more than 1 trips a CPython 3.11 bug (AST recursion depth mismatch in threads)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "18")))
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--report-dir", default=str(ROOT / "var" / "fuzz"))
    parser.add_argument("--budget", type=int, default=int(os.environ.get("FUZZ_BUDGET", "840")),
                        help="seconds for the whole step: a run that would pass it is shortened or skipped")
    args = parser.parse_args()
    args.deadline = time.monotonic() + args.budget
    backends = args.backend or ["sqlite"] + (["postgresql"] if os.environ.get("YILIANTI_TEST_DATABASE_URL") else [])
    started = time.monotonic()
    code = max(run_backend(b, args) for b in backends)
    print(f"=== schemathesis: {'FAILED' if code else 'passed'} on {', '.join(backends)} "
          f"in {time.monotonic() - started:.0f} s ===", flush=True)
    return 1 if code else 0


if __name__ == "__main__":
    sys.exit(main())
