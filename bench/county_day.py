"""B7: a county's day compressed (PERFORMANCE.md, issue 22) — every channel at once on several nodes.

    python bench/county_day.py [--minutes 10] [--kill] [--quick] [--scale 1.0]

Two `yilianti serve` nodes behind Debian's nginx with the shipped config and two `yilianti worker`s on one
PostgreSQL (tests/deploy/nodes.py starts them, as the two-node test does). For `--minutes`, a fixed mix per
second (× `--scale`), each kind paced open-loop (a request is sent on time whether or not the last answered):

    20 bookings (and once, at 30 % of the run, the slot-release burst: 200 clients on 10 sessions, wrk)
    10 referral moves (submitted → received, each referral once), 100 HL7 ORU^R01 over 4 MLLP connections
    (two to each worker, waiting for each ACK), 5 DICOM C-STORE instances, 50 recognition lookups,
    50 shared-record reads, 10 cockpit figure reads — and the jobs they cause (notifications, critical values,
    the periodic jobs of both workers).

At 60 % of the run `yilianti backup` runs beside the load; after it, the backup is restored into a scratch
database with `yilianti restore --verify`. `--kill`: at 45 % one web node and one worker get SIGKILL (their
whole process group) and are started again 10 s later; clients do what a client does — an HTTP request that
got a 502/503 or no answer is sent once more, an MLLP message without ACK is resent (to the other worker while
its own is down), a C-STORE without a success status likewise. `pg_reference.sh tx 8` runs before and after.

Checked from the database at the end (hard pass/fail): bookings — none overbooked, no slot or patient twice,
every 201 answer's booking stored (burst sessions and the steady ones); moves — every 200 answer's referral
received with exactly one history row, none twice; HL7 — every ACKed message stored once with all its
observations (resends recorded as duplicates, nothing stored twice; bench/hl7_ingest.py's verify); DICOM —
every acknowledged instance stored once and counted once; notifications — the outbox drained (nothing pending
or failed) and each queued notice delivered exactly once; 0 × 5xx outside the kill; outbox lag p99 ≤ 5 s
(delivered − due, from the rows' timestamps). Data builders are those of the other benchmarks, on one database.
Writes bench/out/county_day-<time>.json and prints the lines for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
WORK = Path(tempfile.mkdtemp(prefix="ylt-county-"))
# before yilianti reads its settings: the keys the data is written with are generated here and given to every node
os.environ.setdefault("YILIANTI_VAR_DIR", str(WORK / "var"))

import booking as bb  # noqa: E402
import dicom_ingest as dcm  # noqa: E402
import hl7_ingest as hl  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from tests.deploy.nodes import CLI, Cluster, nginx_binary  # noqa: E402

import cockpit as ck  # noqa: E402
import recognition as rc  # noqa: E402
import referral as rf  # noqa: E402

DBNAME = "ylt_bench_county"
MIX = {"booking": 20, "move": 10, "hl7": 100, "dicom": 5, "lookup": 50, "record": 50, "cockpit": 10}
RETRY = {502, 503, 504}


def engine_for(url: str):  # type: ignore[no-untyped-def]
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


class Kind:
    """Answers of one kind: first attempts by status, latencies, and the repeats a client sent."""

    def __init__(self) -> None:
        self.status: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()
        self.lat: list[float] = []
        self.behind = 0  # sends skipped because too many were still waiting (the kind fell behind)
        self.lock = threading.Lock()
        self.first_at: float | None = None

    def add(self, status: str, secs: float, retry: bool = False) -> None:
        with self.lock:
            (self.retried if retry else self.status)[status] += 1
            if not retry:
                self.lat.append(secs)

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = [x * 1000 for x in self.lat]
        return {"count": sum(self.status.values()), "per_s": sum(self.status.values()) / seconds,
                "p50_ms": hl.pct(lat, 0.5), "p99_ms": hl.pct(lat, 0.99), "status": dict(self.status),
                "retried": dict(self.retried), "behind": self.behind}


# ------------------------------------------------------------------------------------------------ data


def build(base_url: str, seconds: float, scale: float) -> dict[str, Any]:
    """One database with every benchmark's data: their builders, each told to use it (not a fresh one)."""
    url = bb.fresh_database(base_url, DBNAME)
    made = bb.fresh_database
    bb.fresh_database = lambda _base, _name: url  # type: ignore[assignment]
    try:
        t0 = time.monotonic()
        _url, rec_token, rec_ids = rc.setup(base_url, 20_000, 200_000)  # first: it takes min/max of all patients
        _url, book_token, ids = bb.setup_database(base_url, patients=20_000)
        _url, cockpit = ck.setup(base_url, 20, 50_000, date.today())
    finally:
        bb.fresh_database = made  # type: ignore[assignment]
    n = int(MIX["booking"] * scale * seconds * 1.2) + 100
    steady = bb.make_sessions(url, ids["schedule"], ids["alliance"], 200, max(50, n // 100), day_offset=3)
    burst = bb.make_sessions(url, ids["schedule"], ids["alliance"], 10, 30, day_offset=5)
    lead = rf.lead_token(url, ids["lead"])
    rlo, rhi = rf.make_referrals(url, ids, int(MIX["move"] * scale * seconds * 1.3) + 200)
    run = time.strftime("%H%M%S")
    orders, _ = hl.create_orders(url, int(MIX["hl7"] * scale * seconds * 1.1) + 200, run)
    rng = random.Random(7)
    msgs = []
    for k, (accession, name, rid, birth) in enumerate(orders):
        known = k % 100 != 99  # 1 %: an accession never issued → AE + quarantine
        critical = known and k % 50 == 7  # 2 %: one HH value → a critical value and its notifications
        control = f"C{run}{k:07d}"
        body, hh = hl.build_message(rng, control, accession if known else f"X{accession}", name, rid, birth,
                                    critical, 5)
        msgs.append(hl.Msg(control, accession, body, 5 if known else 0, hh, known))
    ours = dcm.Ours(url, WORK)  # one imaging order; its accession on every instance
    (WORK / "dicom").mkdir()
    dcm.make_instances(WORK / "dicom", 10, ours.accession, size=64)
    ours.engine.dispose()
    print(f"data in {time.monotonic() - t0:.0f} s: {len(msgs)} HL7 messages, referrals {rlo}..{rhi}, "
          f"{len(steady)} sessions", flush=True)
    return {"url": url, "book_token": book_token, "ids": ids, "rec_token": rec_token, "rec_ids": rec_ids,
            "cockpit": cockpit, "steady": steady, "burst": burst, "lead_token": lead, "referrals": (rlo, rhi),
            "msgs": msgs, "run": run, "accession": ours.accession}


# ------------------------------------------------------------------------------------------------ load


class Load:
    def __init__(self, data: dict[str, Any], cluster: Cluster, scale: float, stop_at: float) -> None:
        self.d, self.cluster, self.scale, self.stop_at = data, cluster, scale, stop_at
        self.kinds = {k: Kind() for k in MIX}
        self.booked: set[int] = set()
        self.moved: set[int] = set()
        self.next_referral = data["referrals"][0]
        self.hl7_sent: list[hl.Msg] = []
        self.hl7_resent: set[str] = set()
        self.dicom_acked: list[str] = []
        self.dicom_resent = 0
        self.events: list[tuple[float, str]] = []
        self.rng = random.Random(11)

    # ---- HTTP kinds
    def request(self, kind: str) -> tuple[str, str, dict[str, Any] | None, str, Callable[[httpx.Response], None]]:
        d, rng = self.d, self.rng
        if kind == "booking":
            body = {"session_id": rng.choice(d["steady"]), "patient_id": rng.randint(d["ids"]["pmin"], d["ids"]["pmax"])}

            def booked(r: httpx.Response) -> None:
                if r.status_code == 201:
                    self.booked.add(int(r.json()["id"]))
            return "POST", "/api/v1/bookings", body, d["book_token"], booked
        if kind == "move":
            rid, self.next_referral = self.next_referral, self.next_referral + 1

            def moved(r: httpx.Response, rid: int = rid) -> None:
                if r.status_code == 200:
                    self.moved.add(rid)
            return ("POST", f"/api/v1/referrals/{rid}/transition",
                    {"to_status": "received", "expected_status": "submitted"}, d["lead_token"], moved)
        if kind in ("lookup", "record"):
            p = rng.randint(d["rec_ids"]["pmin"], d["rec_ids"]["pmax"])
            path = rc.PATHS[kind].replace('" .. p .. "', str(p)).strip('"')
            return "GET", path, None, d["rec_token"], lambda r: None
        today = date.today()
        a = rng.choice(d["cockpit"]["alliances"])
        return ("GET", f"/api/v1/cockpit/figures?alliance_id={a}&start={today - timedelta(days=365):%Y-%m}"
                f"&end={today:%Y-%m}&codes=referral.up,referral.down,referral.down_rate", None,
                str(d["cockpit"]["token"]), lambda r: None)

    async def one(self, client: httpx.AsyncClient, kind: str) -> None:
        method, path, body, token, done = self.request(kind)
        headers = {"Authorization": f"Bearer {token}"}
        for attempt in range(2):
            t0 = time.perf_counter()
            try:
                r = await client.request(method, path, json=body, headers=headers)
                status = str(r.status_code)
            except httpx.HTTPError as exc:
                r, status = None, type(exc).__name__
            self.kinds[kind].add(status, time.perf_counter() - t0, retry=attempt > 0)
            if r is not None and r.status_code not in RETRY:
                done(r)
                return
            await asyncio.sleep(0.5)  # a client's one repeat: the same request (idempotent by its state check)

    async def paced(self, client: httpx.AsyncClient, kind: str) -> None:
        interval, stats = 1 / (MIX[kind] * self.scale), self.kinds[kind]
        tasks: set[asyncio.Task[None]] = set()
        due = time.monotonic()
        while time.monotonic() < self.stop_at:
            due = self.catch_up(stats, due, interval)
            if len(tasks) < 256:
                task = asyncio.create_task(self.one(client, kind))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            else:
                stats.behind += 1
            due += interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        if tasks:
            await asyncio.gather(*tasks)

    @staticmethod
    def catch_up(stats: Kind, due: float, interval: float) -> float:
        """A send more than a second late is not made up for: counted as `behind` (the client or the
        servers could not keep the pace), so the run ends on time and asked ÷ done shows the shortfall."""
        late = time.monotonic() - due
        if late > 1.0:
            skipped = int(late / interval)
            stats.behind += skipped
            due += skipped * interval
        return due

    # ---- HL7: connection c of 4 sends every 4th message to worker c % 2; resends to the other one on failure
    def hl7_sender(self, c: int, msgs: list[hl.Msg]) -> None:
        from hl7.client import MLLPClient

        ports = self.cluster.hl7_ports
        port_i, client = c % len(ports), None
        interval, stats = 4 / (MIX["hl7"] * self.scale), self.kinds["hl7"]
        due = time.monotonic()
        it = iter(msgs)
        while time.monotonic() < self.stop_at:
            late = self.catch_up(stats, due, interval)
            for _ in range(round((late - due) / interval)):  # the skipped messages are never sent
                next(it, None)
            due = late
            m = next(it, None)
            if m is None:
                break
            for attempt in range(200):
                t0 = time.perf_counter()
                try:
                    if client is None:
                        client = MLLPClient("127.0.0.1", ports[port_i], encoding="utf-8")
                    ack = client.send_message(m.text)
                    if not ack:
                        raise ConnectionError("connection closed without an ACK")
                    m.ack = ack.decode("utf-8") if isinstance(ack, bytes) else str(ack)
                    m.latency = time.perf_counter() - t0
                    stats.add(hl.ack_code(m), m.latency, retry=attempt > 0)
                    break
                except Exception as exc:  # noqa: BLE001 - a lost connection, whatever the library calls it
                    stats.add(type(exc).__name__, time.perf_counter() - t0, retry=attempt > 0)
                    self.hl7_resent.add(m.control)
                    if client is not None:
                        with contextlib.suppress(OSError):
                            client.close()
                    client, port_i = None, (port_i + 1) % len(ports)
                    time.sleep(0.3)
            self.hl7_sent.append(m)
            due += interval
            time.sleep(max(0.0, due - time.monotonic()))
        if client is not None:
            client.close()

    # ---- DICOM: one association at a time, to worker 1 — the one `--kill` kills (then to worker 0)
    def dicom_sender(self) -> None:
        import pydicom
        from pydicom.uid import generate_uid
        from pynetdicom import AE
        from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

        templates = [pydicom.dcmread(p) for p in sorted((WORK / "dicom").glob("*.dcm"))]
        ae = AE(ae_title="COUNTY")
        ae.add_requested_context(CTImageStorage)
        ports, assoc = self.cluster.dicom_ports, None
        port_i = len(ports) - 1
        interval, stats = 1 / (MIX["dicom"] * self.scale), self.kinds["dicom"]
        due, k = time.monotonic(), 0
        while time.monotonic() < self.stop_at:
            due = self.catch_up(stats, due, interval)
            ds = templates[k % len(templates)].copy()
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = k + 1
            k += 1
            for attempt in range(200):
                t0 = time.perf_counter()
                try:
                    if assoc is None or not assoc.is_established:
                        assoc = ae.associate("127.0.0.1", ports[port_i], ae_title="YILIANTI")
                    status = assoc.send_c_store(ds) if assoc.is_established else None
                except Exception:  # noqa: BLE001 - the association died under it: resend as below
                    status = None
                code = getattr(status, "Status", None)
                stats.add("success" if code == 0 else f"status {code}", time.perf_counter() - t0, retry=attempt > 0)
                if code == 0:
                    self.dicom_acked.append(str(ds.SOPInstanceUID))
                    break
                self.dicom_resent += 1
                if assoc is not None and assoc.is_established:
                    assoc.abort()
                assoc, port_i = None, (port_i + 1) % len(ports)
                time.sleep(0.3)
            due += interval
            time.sleep(max(0.0, due - time.monotonic()))
        if assoc is not None and assoc.is_established:
            assoc.release()


def at(share: float, started: float, seconds: float) -> float:
    return started + share * seconds


async def drive(load: Load, seconds: float, kill: bool, backup_dir: Path, env: dict[str, str],
                started: float) -> dict[str, Any]:
    d, cluster, out = load.d, load.cluster, {}
    msgs = d["msgs"]
    threads = [threading.Thread(target=load.hl7_sender, args=(c, msgs[c::4]), daemon=True) for c in range(4)]
    threads.append(threading.Thread(target=load.dicom_sender, daemon=True))
    for t in threads:
        t.start()

    async def later(share: float, what: str, fn: Callable[[], Any]) -> None:
        await asyncio.sleep(max(0.0, at(share, started, seconds) - time.monotonic()))
        load.events.append((time.monotonic() - started, f"{what} start"))
        out[what] = await asyncio.to_thread(fn)
        load.events.append((time.monotonic() - started, f"{what} end"))

    def burst() -> dict[str, Any]:
        script = bb.LUA % {"sessions": ",".join(map(str, d["burst"])), "token": d["book_token"],
                           "pmin": d["ids"]["pmin"], "pmax": d["ids"]["pmax"]}
        return bb.wrk(cluster.base, script, 200, 9)

    def kill9() -> dict[str, Any]:
        t0 = time.monotonic()
        cluster.kill9("web1")
        cluster.kill9("worker1")
        time.sleep(10)
        cluster.restart("worker1")
        cluster.restart("web1")
        return {"killed": ["web1", "worker1"], "back_after_s": round(time.monotonic() - t0, 1)}

    def backup() -> dict[str, Any]:
        t0 = time.monotonic()
        done = subprocess.run([*CLI, "backup", "--output", str(backup_dir)], env=env, capture_output=True, text=True)
        return {"exit": done.returncode, "seconds": round(time.monotonic() - t0, 1),
                "output": (done.stdout + done.stderr).strip()[-400:]}

    loads: list[tuple[float, float]] = []

    async def sample() -> None:
        while time.monotonic() < load.stop_at:
            loads.append((round(time.monotonic() - started), os.getloadavg()[0]))
            if len(loads) % 3 == 1:
                print(f"{loads[-1][0]:4d} s load {loads[-1][1]:.1f} answered " + ", ".join(
                    f"{k} {sum(v.status.values())} (behind {v.behind})" for k, v in load.kinds.items()), flush=True)
            await asyncio.sleep(10)

    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=cluster.base, timeout=60, limits=limits) as client:
        jobs = [load.paced(client, k) for k in ("booking", "move", "lookup", "record", "cockpit")]
        jobs += [later(0.3, "burst", burst), later(0.6, "backup", backup), sample()]
        if kill:
            jobs.append(later(0.45, "kill", kill9))
        await asyncio.gather(*jobs)
    for t in threads:
        t.join(120)
    out["load_samples"] = loads
    return out


# ------------------------------------------------------------------------------------------------ checks

PROXY_LINE = re.compile(r'"(\w+) (\S+) [^"]*" (\d{3}) \d+ ([\d.]+) "([^"]*)" "([^"]*)"')
ROUTES = (("/api/v1/bookings", "booking"), ("/transition", "move"), ("/recognition/lookup", "lookup"),
          ("/record", "record"), ("/cockpit/figures", "cockpit"))


def at_proxy(log: Path) -> dict[str, Any]:
    """Per kind as nginx saw it ($request_time, tests/deploy/nodes.py's log format): the servers' side, not
    stretched by a busy client; the burst is wrk's (no python-httpx user agent)."""
    times: dict[str, list[float]] = {}
    status: dict[str, Counter[str]] = {}
    for line in log.open(errors="replace"):
        m = PROXY_LINE.search(line)
        if not m:
            continue
        _method, path, code, secs, _upstream, agent = m.groups()
        kind = next((k for part, k in ROUTES if part in path), None)
        if kind == "booking" and not agent.startswith("python-httpx"):
            kind = "burst"
        if kind is None:
            continue
        times.setdefault(kind, []).append(float(secs) * 1000)
        status.setdefault(kind, Counter())[code] += 1
    return {k: {"p50_ms": hl.pct(v, 0.5), "p99_ms": hl.pct(v, 0.99), "count": len(v), "status": dict(status[k])}
            for k, v in times.items()}



def drain(url: str, seconds: float = 180) -> int:
    """Wait until the outbox holds nothing due; the rows still waiting (0 is what a drained queue says)."""
    engine = engine_for(url)
    deadline = time.monotonic() + seconds
    with engine.connect() as c:
        while True:
            left = int(c.execute(text("SELECT count(*) FROM outbox WHERE status = 'pending'")).scalar_one())
            c.rollback()
            if left == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
    time.sleep(3)  # the read audits' batch flush (≤ 1 s) and the last seal
    engine.dispose()
    return left


def invariants(load: Load, since: datetime) -> dict[str, Any]:
    d, url = load.d, load.d["url"]
    out: dict[str, Any] = {"outbox_pending_after_drain": drain(url)}
    out["bookings"] = bb.check_invariants(url, d["steady"] + d["burst"])
    engine = engine_for(url)
    with engine.connect() as c:
        ids = sorted(load.booked)
        stored = c.execute(text("SELECT count(*) FROM booking WHERE id = ANY(:ids) AND status = 'booked'"),
                           {"ids": ids}).scalar_one()
        out["bookings"].update(answered_201=len(ids), answered_201_missing=len(ids) - int(stored))
        lo, hi = d["referrals"]
        moved = sorted(load.moved)
        received, rows, dup, missing = c.execute(text(
            "SELECT (SELECT count(*) FROM referral WHERE id BETWEEN :lo AND :hi AND status = 'received'), "
            "(SELECT count(*) FROM referral_history WHERE referral_id BETWEEN :lo AND :hi AND to_status = 'received'), "
            "(SELECT count(*) FROM (SELECT referral_id FROM referral_history WHERE referral_id BETWEEN :lo AND :hi "
            " AND to_status = 'received' GROUP BY referral_id HAVING count(*) > 1) x), "
            "(SELECT count(*) FROM referral WHERE id = ANY(:moved) AND status <> 'received')"),
            {"lo": lo, "hi": hi, "moved": moved}).one()
        out["moves"] = {"answered_200": len(moved), "received": int(received), "history_rows": int(rows),
                        "duplicate": int(dup), "answered_but_not_received": int(missing)}
        sops = load.dicom_acked
        inst, counted, dup_inbound = c.execute(text(
            "SELECT (SELECT count(*) FROM imaging_instance WHERE sop_instance_uid = ANY(:u)), "
            "(SELECT coalesce(sum(instance_count), 0) FROM imaging_study WHERE accession_number = :a), "
            "(SELECT count(*) FROM (SELECT control_id FROM inbound_message WHERE channel = 'dicom' AND status = 'stored' "
            " AND control_id = ANY(:u) GROUP BY control_id HAVING count(*) > 1) x)"),
            {"u": sops, "a": d["accession"]}).one()
        out["dicom"] = {"acknowledged": len(sops), "instances": int(inst), "study_count": int(counted),
                        "resent": load.dicom_resent, "stored_twice": int(dup_inbound)}
        # every queued notice delivered once: notifications and delivered `notify` rows, as multisets
        extra, lost = c.execute(text("""
            WITH n AS (SELECT title, coalesce(link, '') l, coalesce(user_id, 0) u, coalesce(institution_id, 0) i,
                              count(*) k FROM notification GROUP BY 1, 2, 3, 4),
                 o AS (SELECT payload->>'title' title, coalesce(payload->>'link', '') l,
                              coalesce((payload->>'user_id')::bigint, 0) u,
                              coalesce((payload->>'institution_id')::bigint, 0) i, count(*) k
                       FROM outbox WHERE topic = 'notify' AND status = 'done' GROUP BY 1, 2, 3, 4)
            SELECT coalesce(sum(greatest(coalesce(n.k, 0) - coalesce(o.k, 0), 0)), 0),
                   coalesce(sum(greatest(coalesce(o.k, 0) - coalesce(n.k, 0), 0)), 0)
            FROM n FULL JOIN o USING (title, l, u, i)""")).one()
        by_status = dict(c.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all())
        lag = c.execute(text(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.99) WITHIN GROUP (ORDER BY s), "
            "max(s), count(*) FROM (SELECT extract(epoch FROM processed_at - available_at) s FROM outbox "
            "WHERE status = 'done' AND created_at >= :t) x"), {"t": since}).one()
        out["notifications"] = {"outbox": {k: int(v) for k, v in by_status.items()},
                                "notifications": int(c.execute(text("SELECT count(*) FROM notification")).scalar_one()),
                                "delivered_twice": int(extra), "not_delivered": int(lost)}
        out["outbox_lag_s"] = {"p50": float(lag[0] or 0), "p99": float(lag[1] or 0), "max": float(lag[2] or 0),
                               "rows": int(lag[3])}
        audits = dict(c.execute(text("SELECT resource_type, count(*) FROM audit_event WHERE resource_type IN "
                                     "('recognition_lookup', 'shared_record') AND at >= :t GROUP BY 1"),
                                {"t": since}).all())
        out["read_audits"] = {k: int(v) for k, v in audits.items()}
    engine.dispose()
    out["hl7"] = hl.verify(url, load.hl7_sent, d["run"], resent=load.hl7_resent)
    out["hl7"]["resent"] = len(load.hl7_resent)
    return out


def violations(inv: dict[str, Any]) -> list[str]:
    bad = []
    b = inv["bookings"]
    if b["overbooked"] or b["phantom"] or b["duplicate_slot"] or b["duplicate_patient"] or b["answered_201_missing"]:
        bad.append(f"bookings {b}")
    m = inv["moves"]
    if m["duplicate"] or m["answered_but_not_received"] or m["received"] != m["history_rows"]:
        bad.append(f"moves {m}")
    if inv["hl7"]["problem_count"]:
        bad.append(f"hl7 {inv['hl7']['problems'][:3]}")
    g = inv["dicom"]
    if g["instances"] != g["acknowledged"] or g["stored_twice"] or g["study_count"] < g["instances"]:
        bad.append(f"dicom {g}")
    n = inv["notifications"]
    if n["delivered_twice"] or n["not_delivered"] or n["outbox"].get("failed") or inv["outbox_pending_after_drain"]:
        bad.append(f"notifications {n}")
    return bad


def restore_check(backup_dir: Path, base_url: str, env: dict[str, str]) -> dict[str, Any]:
    """The backup taken under load, restored into an empty scratch database and verified."""
    name = DBNAME + "_restore"
    admin = create_engine(base_url.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {name}"))
    t0 = time.monotonic()
    done = subprocess.run([*CLI, "restore", "--input", str(backup_dir), "--verify"], capture_output=True, text=True,
                          env={**env, "YILIANTI_DATABASE_URL": f"{base_url}/{name}",
                               "YILIANTI_VAR_DIR": str(WORK / "restored-var")})
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()
    lines = (done.stdout + done.stderr).strip().splitlines()
    return {"exit": done.returncode, "seconds": round(time.monotonic() - t0, 1),
            "verified": next((ln for ln in lines if ln.startswith("verified")), None), "tail": lines[-5:]}


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--quick", action="store_true", help="2 minutes (a smoke run)")
    ap.add_argument("--kill", action="store_true", help="kill -9 one web node and one worker at 45 %%, restart them")
    ap.add_argument("--scale", type=float, default=1.0, help="multiple of the per-second mix")
    args = ap.parse_args()
    seconds = (2 if args.quick else args.minutes) * 60
    nginx, why = nginx_binary()
    if nginx is None:
        print(why)
        return 2
    result: dict[str, Any] = {"at": datetime.now(UTC).isoformat(timespec="minutes"), "nproc": os.cpu_count(),
                              "seconds": seconds, "scale": args.scale, "kill": args.kill, "mix": MIX,
                              "load_start": os.getloadavg()}
    print(f"B7 county day: {seconds / 60:g} min, scale {args.scale}, kill={args.kill}, load {os.getloadavg()}",
          flush=True)
    data = build(args.url, seconds, args.scale)
    from yilianti.config import get_settings

    keys = get_settings()
    env = dict(os.environ, YILIANTI_DATABASE_URL=data["url"], YILIANTI_VAR_DIR=str(WORK / "var"),
               YILIANTI_DATA_KEYS=",".join(keys.resolved_data_keys()), YILIANTI_INDEX_KEY=keys.resolved_index_key(),
               YILIANTI_SECRET_KEY="county-day", YILIANTI_RUN_JOBS_IN_PROCESS="false", YILIANTI_ACCESS_LOG="false",
               YILIANTI_LOG_FORMAT="json", YILIANTI_WEB_PROCESSES="1", YILIANTI_HOST="127.0.0.1",
               YILIANTI_DB_MAX_OVERFLOW="5", PYTHONUNBUFFERED="1")
    (WORK / "cluster").mkdir()
    cluster = Cluster(env, WORK / "cluster", nginx, connections=4096,
                      per_node={f"web{i}": {"YILIANTI_AUDIT_JOURNAL_DIR": str(WORK / f"journal-web{i}")}
                                for i in range(2)})
    backup_dir = WORK / "backup"
    result["reference_before"] = bb.reference("tx", 8, 10)
    try:
        cluster.start()
        with httpx.Client(base_url=cluster.base, timeout=60) as warm:  # first requests load each node's caches
            for _ in range(20):
                warm.get("/healthz")
        since = bb.db_now(data["url"])
        started = time.monotonic()
        load = Load(data, cluster, args.scale, started + seconds)
        result.update(asyncio.run(drive(load, seconds, args.kill, backup_dir, env, started)))
        wall = time.monotonic() - started
        result["kinds"] = {k: v.summary(seconds) for k, v in load.kinds.items()}
        result["events"] = load.events
        result["load_end"] = os.getloadavg()
        result["invariants"] = inv = invariants(load, since)
    finally:
        cluster.stop()
    result["proxy"] = at_proxy(WORK / "cluster" / "nginx-access.log")
    result["reference_after"] = bb.reference("tx", 8, 10)
    result["restore"] = restore_check(backup_dir, args.url, env) if backup_dir.exists() else {"exit": None}
    result["wall_s"] = round(wall)
    bad = violations(inv)
    fivexx = {k: sum(n for s, n in v["status"].items() if s.startswith("5")) for k, v in result["proxy"].items()}
    result["5xx"] = fivexx
    result["violations"] = bad
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    path = out / f"county_day-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str))

    print(f"\nB7 {result['at']} UTC, {seconds / 60:g} min × scale {args.scale}, kill -9: {args.kill}; load "
          f"{result['load_start'][0]:.1f} → {result['load_end'][0]:.1f} (max {max(x for _, x in result['load_samples']):.1f})")
    print("| kind | asked /s | done /s | p50 ms | p99 ms | at nginx p50 / p99 ms | answers | repeats | late sends |")
    print("|---|---|---|---|---|---|---|---|---|")
    proxy = result["proxy"]
    for k, v in result["kinds"].items():
        px = proxy.get(k, {})
        at_nginx = f"{px['p50_ms']:.0f} / {px['p99_ms']:.0f}" if px else "–"
        print(f"| {k} | {MIX[k] * args.scale:g} | {v['per_s']:.1f} | {v['p50_ms']:.0f} | {v['p99_ms']:.0f} | "
              f"{at_nginx} | {v['status']} | {v['retried'] or '–'} | {v['behind']} |")
    if "burst" in proxy:
        print(f"| burst (wrk, 200 clients, 9 s) | – | – | – | – | {proxy['burst']['p50_ms']:.0f} / "
              f"{proxy['burst']['p99_ms']:.0f} | {proxy['burst']['status']} | – | – |")
    lag = inv["outbox_lag_s"]
    print(f"outbox lag p50 {lag['p50']:.2f} s, p99 {lag['p99']:.2f} s, max {lag['max']:.2f} s over {lag['rows']} rows "
          f"(target p99 ≤ 5 s); 5xx: {fivexx}")
    print(f"burst: {result.get('burst', {}).get('status')}; kill: {result.get('kill')}; backup: "
          f"exit {result['backup']['exit']} in {result['backup']['seconds']} s; restore: exit {result['restore']['exit']} "
          f"{result['restore'].get('verified')}")
    print(f"reference tx 8: {result['reference_before']['tps']:.0f} / {result['reference_after']['tps']:.0f} tps "
          "before / after")
    print(f"invariants: bookings {inv['bookings']}; moves {inv['moves']}; hl7 sent {inv['hl7']['sent']} stored "
          f"{inv['hl7']['stored']} resent {inv['hl7']['resent']} problems {inv['hl7']['problem_count']}; dicom "
          f"{inv['dicom']}; notifications {inv['notifications']}; read audits {inv['read_audits']}")
    print(f"violations: {bad or 'none'}\nresults: {path}")
    ok = not bad and result["restore"]["exit"] == 0 and result["backup"]["exit"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
