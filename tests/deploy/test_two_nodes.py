"""Several nodes (issue 22): two `yilianti serve` processes on their own ports behind Debian's nginx with the
shipped config (deploy/nginx/yilianti.conf), two `yilianti worker`s, one PostgreSQL. Clients racing through
nginx make a booking once and a referral move once, each notification is delivered once, and a periodic
sweep runs once per period though both workers schedule it.

nginx is installed by deploy/nginx/ensure-nginx.sh when missing (Debian, as root); otherwise the test skips
with the reason."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from tests import builders as b
from tests.attachments.helpers import PDF
from tests.conftest import BACKEND
from tests.live import api_token
from tests.referral.helpers import submitted_up
from tests.scheduling.helpers import world
from yilianti.config import get_settings, normalise_db_url
from yilianti.migrate import upgrade

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="several nodes share one PostgreSQL")

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from yilianti.cli import main; sys.exit(main())"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found:
        return found
    done = subprocess.run(["bash", str(ROOT / "deploy" / "nginx" / "ensure-nginx.sh")], capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"nginx missing and not installable here: {done.stdout[-300:]}{done.stderr[-300:]}")
    return "/usr/sbin/nginx"


def _nginx_conf(tmp: Path, listen: int, nodes: list[int]) -> Path:
    """The shipped server block with loopback addresses, inside a main config of the test's own."""
    shipped = (ROOT / "deploy" / "nginx" / "yilianti.conf").read_text(encoding="utf-8")
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n" for p in nodes)
    site = re.sub(r"(upstream yilianti \{\n)(?:    server [^\n]*\n)+", lambda m: m.group(1) + servers, shipped)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    (tmp / "site.conf").write_text(site, encoding="utf-8")
    main = f"""daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""
    (tmp / "nginx.conf").write_text(main, encoding="utf-8")
    return tmp / "nginx.conf"


def _wait(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def test_two_nodes_behind_nginx_and_two_workers_do_each_thing_once(test_db: Any, tmp_path: Path) -> None:
    nginx = _nginx()
    url = test_db.new_database_url()
    upgrade(url)
    engine = create_engine(normalise_db_url(url))
    with Session(engine, expire_on_commit=False) as db:
        w = world(db, capacity=5, tag="双")
        patient = b.patient(db, w.comm_doc, name="双节点").id
        referral = submitted_up(db, w, b.patient(db, w.comm_doc, name="转诊双节点")).id
        comm_token, lead_token = api_token(db, w.comm_doc), api_token(db, w.lead_doc)
        session_id = w.session.id
        db.commit()
    keys = get_settings()  # the keys the test wrote the patients with
    env = dict(os.environ, YILIANTI_DATABASE_URL=url, YILIANTI_VAR_DIR=str(tmp_path / "var"),
               YILIANTI_DATA_KEYS=",".join(keys.resolved_data_keys()), YILIANTI_INDEX_KEY=keys.resolved_index_key(),
               YILIANTI_RUN_JOBS_IN_PROCESS="false", YILIANTI_HL7_FAST_PATH="false", YILIANTI_LOG_FORMAT="json",
               YILIANTI_SECRET_KEY="two-nodes-share-this-cookie-signing-key",
               YILIANTI_ATTACHMENTS_DIR=str(tmp_path / "shared-attachments"))
    env.pop("YILIANTI_TEST_DATABASE_URL", None)
    nodes, front = [_free_port(), _free_port()], _free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], name: str, **extra: str) -> None:
        log = (tmp_path / f"{name}.log").open("wb")
        procs.append(subprocess.Popen(args, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT))

    try:
        for i, port in enumerate(nodes):  # each node its own var dir: only the database and attachments are shared
            start([*CLI, "serve"], f"web{i}", YILIANTI_PORT=str(port), YILIANTI_VAR_DIR=str(tmp_path / f"var-web{i}"))
        receiving = {"YILIANTI_HL7_PORT": str(_free_port()), "YILIANTI_DICOM_PORT": str(_free_port())}
        start([*CLI, "worker"], "worker0", **receiving)
        # the second worker on the same ports: with --no-receivers it runs jobs and leaves the ports alone
        start([*CLI, "worker", "--no-receivers"], "worker1", **receiving)
        start([nginx, "-c", str(_nginx_conf(tmp_path, front, nodes)), "-p", str(tmp_path)], "nginx")
        for port in nodes:
            _wait(f"http://127.0.0.1:{port}/readyz")
        base = f"http://127.0.0.1:{front}"
        _wait(f"{base}/healthz")

        def book(_: int) -> httpx.Response:
            return httpx.post(f"{base}/api/v1/bookings", json={"session_id": session_id, "patient_id": patient},
                              headers={"Authorization": f"Bearer {comm_token}"}, timeout=60)

        def move(_: int) -> httpx.Response:
            return httpx.post(f"{base}/api/v1/referrals/{referral}/transition",
                              json={"to_status": "received", "expected_status": "submitted"},
                              headers={"Authorization": f"Bearer {lead_token}"}, timeout=60)

        with ThreadPoolExecutor(12) as pool:
            bookings = list(pool.map(book, range(12)))
            moves = list(pool.map(move, range(12)))
        assert sorted({r.status_code for r in bookings}) in ([201, 409], [201]), [r.text for r in bookings]
        assert sum(r.status_code == 201 for r in bookings) == 1, [r.text for r in bookings]
        assert sum(r.status_code == 200 for r in moves) == 1, [r.text for r in moves]
        assert all(r.status_code in (200, 409) for r in moves)
        assert all(r.headers.get("X-Request-ID") for r in bookings + moves)
        served_by = (tmp_path / "nginx-access.log").read_text()
        assert served_by.count("/api/v1/") == 24
        # DICOMweb's links carry the address the client used (nginx's port), not the node's (web/urls.py)
        stow = httpx.post(f"{base}/dicomweb/studies/1.2.3", content=b"--b\r\n\r\nnot dicom\r\n--b--\r\n",
                          headers={"Authorization": f"Bearer {lead_token}",
                                   "Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
        assert stow.status_code == 409 and stow.json()["00081190"]["Value"] == [f"{base}/dicomweb/studies/1.2.3"]

        # a cookie session made on node A works on node B; a file uploaded on A downloads from B
        node_a, node_b = (f"http://127.0.0.1:{port}" for port in nodes)
        with httpx.Client(base_url=node_a, timeout=60) as a, httpx.Client(base_url=node_b, timeout=60) as b_:
            csrf = b.login(a, w.comm_doc.username)  # type: ignore[arg-type]
            b_.cookies = a.cookies
            assert b_.get("/account").status_code == 200
            up = a.post(f"/referrals/{referral}/attachments", data={"csrf_token": csrf},
                        files={"file": ("化验单.pdf", PDF, "application/pdf")})
            assert up.status_code == 303 and up.headers["location"].endswith("done=attach"), up.text
            listed = b_.get(f"/api/v1/referrals/{referral}/attachments",
                            headers={"Authorization": f"Bearer {comm_token}"}).json()
            got = b_.get(f"/referrals/{referral}/attachments/{listed[0]['id']}")
            assert got.status_code == 200 and got.content == PDF
            b_.post("/logout", data={"csrf_token": csrf})  # logged out on B: the session ends on A too
            assert a.get("/account").status_code in (303, 401)
        assert procs[3].poll() is None, (tmp_path / "worker1.log").read_text()  # not stopped by a taken port
        assert "HL7 MLLP receiver" not in (tmp_path / "worker1.log").read_text()
        assert "HL7 MLLP receiver" in (tmp_path / "worker0.log").read_text()

        with engine.connect() as conn:
            deadline = time.monotonic() + 60
            while conn.execute(text("SELECT count(*) FROM outbox WHERE status <> 'done'")).scalar_one():
                conn.rollback()
                assert time.monotonic() < deadline, "outbox not delivered"
                time.sleep(0.5)
            conn.rollback()
            time.sleep(4)  # a few periods of the 1-second audit seal on both workers
            assert conn.execute(text("SELECT count(*) FROM booking WHERE patient_id = :p AND status = 'booked'"),
                                {"p": patient}).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM referral_history WHERE referral_id = :r "
                                     "AND to_status = 'received'"), {"r": referral}).scalar_one() == 1
            notes = conn.execute(text("SELECT link, count(*) FROM notification WHERE link = :l GROUP BY link"),
                                 {"l": f"/referrals/{referral}"}).all()
            outbox = conn.execute(text("SELECT count(*) FROM outbox WHERE payload->>'link' = :l"),
                                  {"l": f"/referrals/{referral}"}).scalar_one()
            assert outbox >= 1 and notes and notes[0][1] == outbox  # each queued notice delivered once
            # periodic jobs: every period procrastinate ran a job for (even twice, when a late worker's scheduler
            # deferred it again) ran the job's body once — its claim in periodic_run is the table's key
            runs = conn.execute(text("SELECT name, period FROM periodic_run")).all()
            jobs = conn.execute(text(
                "SELECT DISTINCT task_name, (args->>'timestamp')::bigint FROM procrastinate_jobs "
                "WHERE args ? 'timestamp' AND status = 'succeeded' AND task_name NOT LIKE 'outbox.%' "
                "AND task_name NOT LIKE 'queue.%'")).all()
            assert len(runs) == len(set(runs)) and set(jobs) <= set(runs)
            assert any(n == "referral.sweep_overdue" for n, _ in runs)  # scheduled by both workers at start
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        engine.dispose()
