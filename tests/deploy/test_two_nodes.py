"""Several nodes (issue 22): two `yilianti serve` processes on their own ports behind Debian's nginx with the
shipped config (deploy/nginx/yilianti.conf), two `yilianti worker`s, one PostgreSQL. Clients racing through
nginx make a booking once and a referral move once, each notification is delivered once, and a periodic
sweep runs once per period though both workers schedule it.

nginx is installed by deploy/nginx/ensure-nginx.sh when missing (Debian, as root); otherwise the test skips
with the reason. The processes are started by tests/deploy/nodes.py (the county-day benchmark uses it too)."""

from __future__ import annotations

import os
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
from tests.deploy.nodes import Cluster, nginx_binary
from tests.live import api_token
from tests.referral.helpers import submitted_up
from tests.scheduling.helpers import world
from yilianti.config import get_settings, normalise_db_url
from yilianti.migrate import upgrade

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="several nodes share one PostgreSQL")

def test_two_nodes_behind_nginx_and_two_workers_do_each_thing_once(test_db: Any, tmp_path: Path) -> None:
    nginx, why = nginx_binary()
    if nginx is None:
        pytest.skip(why)
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
    # each web node its own var dir: only the database and attachments are shared; the second worker on the
    # first one's ports: with --no-receivers it runs jobs and leaves the ports alone
    cluster = Cluster(env, tmp_path, nginx, per_node={"web0": {"YILIANTI_VAR_DIR": str(tmp_path / "var-web0")},
                                                      "web1": {"YILIANTI_VAR_DIR": str(tmp_path / "var-web1")}},
                      args={"worker1": ["--no-receivers"]})
    cluster.per_node["worker1"] = {"YILIANTI_HL7_PORT": str(cluster.hl7_ports[0]),
                                   "YILIANTI_DICOM_PORT": str(cluster.dicom_ports[0])}
    try:
        cluster.start()
        base, nodes = cluster.base, cluster.web_ports

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
        # not stopped by a taken port
        assert cluster.procs["worker1"].poll() is None, (tmp_path / "worker1.log").read_text()
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
        cluster.stop()
        engine.dispose()
