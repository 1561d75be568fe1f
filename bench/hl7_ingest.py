"""HL7 ORU^R01 ingest benchmark: C concurrent MLLP connections → `yilianti worker`'s HL7 receiver.

A fresh PostgreSQL database (migrations) gets N lab orders (accession numbers) for N patients with
resident IDs, bulk-inserted. The receiver runs as in production: `yilianti worker` in a process of
its own (HL7 + DICOM receivers and the job runner that delivers critical-value notifications).
Then, for each connection count C, M ORU^R01 messages (one per order, 5 OBX each, about a third of
the observations flagged H/L, 2 % of the messages with a critical HH value, 1 % with an unknown
accession number that must be AE + quarantined) are sent over C connections by python-hl7's
MLLPClient, each connection waiting for its ACK before sending the next message, as interface
engines do. Reported: messages/s, p50/p99 ACK latency; ratio to a grade-3A hospital's peak of
~500 interface messages/s (PERFORMANCE.md: 20–30k per minute). PostgreSQL's own `tx` reference
(`pg_reference.sh tx 8 5`) is run before and after, for the machine's state.

Afterwards, hard pass/fail: every message ACKed (AA, or AE for the unknown accessions), every
observation stored exactly once on its order, every order final, one inbound row per message,
quarantined exactly the unknown ones, one critical value per HH observation, one audit row each.

    .venv/bin/python bench/hl7_ingest.py                     # 1,000 messages per level, C = 1, 4, 8 (≈ 1 min)
    .venv/bin/python bench/hl7_ingest.py --large             # 10,000 messages per level (≈ 10 min)
    .venv/bin/python bench/hl7_ingest.py --messages 200 --connections 4
    .venv/bin/python bench/hl7_ingest.py --database-url sqlite:////tmp/hl7.db   # no database created

Bounded: each level stops sending after --max-seconds; the worker is stopped and the database
dropped at the end (--keep keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from hl7.client import MLLPClient  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

PEAK = 500.0  # messages/s, a grade-3A hospital's interface peak (20–30k per minute)
PG_REFERENCE = ROOT.parent / "shared" / "bench" / "pg_reference.sh"

# (code, name, units, range, low, high) — a blood count and chemistry panel
ITEMS = [
    ("718-7", "血红蛋白", "g/L", "130-175", 130.0, 175.0),
    ("6690-2", "白细胞计数", "10*9/L", "3.5-9.5", 3.5, 9.5),
    ("777-3", "血小板计数", "10*9/L", "125-350", 125.0, 350.0),
    ("2823-3", "血钾", "mmol/L", "3.5-5.3", 3.5, 5.3),
    ("2345-7", "葡萄糖", "mmol/L", "3.9-6.1", 3.9, 6.1),
    ("2160-0", "肌酐", "umol/L", "57-111", 57.0, 111.0),
]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def resident_id(n: int) -> str:
    """A valid 18-digit resident ID (GB 11643 check digit), distinct per n."""
    body = f"131024{1950 + n % 50:04d}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    body = body[:14] + f"{(n // 1000) % 1000:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
    return body + check


@dataclass
class Msg:
    control: str
    accession: str
    text: str
    obx: int
    critical: int
    known: bool
    ack: str = ""
    latency: float = 0.0


@dataclass
class Level:
    connections: int
    msgs: list[Msg]
    seconds: float = 0.0
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    worker_cpu: float = 0.0  # CPU seconds of the worker process during the level
    pg_cpu: float = 0.0  # CPU seconds of all PostgreSQL server processes (others' load included)


def build_message(rng: random.Random, control: str, accession: str, name: str, rid: str, birth: date,
                  critical: bool, obx_count: int) -> tuple[str, int]:
    """One ORU^R01 (CR separators, UTF-8 Chinese names); returns the text and its HH count."""
    items = rng.sample(ITEMS, obx_count) if obx_count <= len(ITEMS) else [rng.choice(ITEMS) for _ in range(obx_count)]
    lines = [
        f"MSH|^~\\&|LIS|渠口镇卫生院|YILIANTI|香河县人民医院|20261123083000||ORU^R01^ORU_R01|{control}|P|2.5.1"
        "|||||CHN|UNICODE UTF-8",
        f"PID|1||{rid}^^^CN-RIC||{name}||{birth:%Y%m%d}|M",
        f"OBR|1|{accession}|F{control}|LAB001^血常规+生化^L|||20261123080000",
    ]
    hh = 0
    for i, (code, label, units, ref, low, high) in enumerate(items, 1):
        roll = rng.random()
        if critical and i == 1:
            value, flag = high * 1.6, "HH"
            hh += 1
        elif roll < 0.17:
            value, flag = high * rng.uniform(1.05, 1.3), "H"
        elif roll < 0.34:
            value, flag = low * rng.uniform(0.7, 0.95), "L"
        else:
            value, flag = rng.uniform(low, high), "N"
        lines.append(f"OBX|{i}|NM|{code}^{label}^LN||{value:.1f}|{units}|{ref}|{flag}|||F|||20261123081500")
    return "\r".join(lines) + "\r", hh


# ------------------------------------------------------------------------------------ data


def create_orders(url: str, n: int, run: str) -> tuple[list[tuple[str, str, str, date]], float]:
    """n patients (resident ID) with one lab order each, by multi-row INSERT; returns (accession, name, rid, birth)."""
    from yilianti import db as dbmod
    from yilianti.kit.crypto import blind_index
    from yilianti.models.alliance import Institution
    from yilianti.models.diagnostics import DiagnosticOrder
    from yilianti.models.patient import Patient, PatientIdentifier

    started = time.monotonic()
    engine = dbmod.make_engine(url)
    factory = sessionmaker(bind=engine)
    with factory() as db:
        township = Institution(name=f"渠口镇卫生院(基准{run})", kind="grassroots", level=1, province="河北")
        county = Institution(name=f"香河县人民医院(基准{run})", kind="general", level=2, province="河北")
        db.add_all([township, county])
        db.commit()
        township_id, county_id = township.id, county.id
    rng = random.Random(6)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows: list[tuple[str, str, str, date]] = []
    chunk = 5000
    with engine.begin() as conn:
        first = conn.scalar(select(func.coalesce(func.max(Patient.id), 0))) or 0
        for start in range(0, n, chunk):
            pats, idents, orders = [], [], []
            for k in range(start, min(n, start + chunk)):
                pid = first + k + 1
                rid = resident_id(k)
                birth = date(int(rid[6:10]), int(rid[10:12]), int(rid[12:14]))
                name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
                accession = f"L{run}{k:07d}"
                pats.append({"id": pid, "name": name, "sex": "男", "birth_date": birth,
                             "registered_by_institution_id": township_id, "active": True, "created_at": now})
                idents.append({"patient_id": pid, "authority": "CN-RIC", "value_enc": rid,  # Encrypted: ciphertext
                               "value_bidx": blind_index("id", rid), "created_at": now})
                orders.append({"accession_number": accession, "patient_id": pid,
                               "ordering_institution_id": township_id, "reading_centre_institution_id": county_id,
                               "performing_institution_id": county_id, "kind": "lab", "item_code": "LAB001",
                               "item_name": "血常规+生化", "status": "ordered", "priority": "routine",
                               "ordered_at": now, "updated_at": now, "created_at": now})
                rows.append((accession, name, rid, birth))
            conn.execute(insert(Patient), pats)
            conn.execute(insert(PatientIdentifier), idents)
            conn.execute(insert(DiagnosticOrder), orders)
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('patient', 'id'), (SELECT max(id) FROM patient))"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return rows, time.monotonic() - started


# ------------------------------------------------------------------------------------ receiver


class Worker:
    """`yilianti worker` in its own process (receivers + job runner), as in production."""

    def __init__(self, url: str, work: Path, env: dict[str, str] | None = None) -> None:
        self.url, self.work, self.extra_env = url, work, env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    def start(self) -> int:
        env = dict(os.environ, YILIANTI_DATABASE_URL=self.url, YILIANTI_HOST="127.0.0.1",
                   YILIANTI_HL7_PORT=str(self.port), YILIANTI_DICOM_PORT=str(free_port()),
                   YILIANTI_VAR_DIR=str(self.work / "var"), PYTHONUNBUFFERED="1", **self.extra_env)
        exe = Path(sys.executable).with_name("yilianti")
        cmd = [str(exe), "worker"] if exe.exists() else [sys.executable, "-m", "yilianti.cli", "worker"]
        self.log = open(self.work / "worker.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.work)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("worker exited:\n" + (self.work / "worker.log").read_text()[-2000:])
            if "HL7 MLLP receiver on" in (self.work / "worker.log").read_text(errors="replace"):
                return self.port
            time.sleep(0.2)
        raise RuntimeError("worker did not start its HL7 receiver in 60 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
            self.log.close()


# ------------------------------------------------------------------------------------ sending


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds; 0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the worker's extra receiver processes)."""
    total = proc_cpu(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    total += proc_cpu(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return total


def postgres_cpu() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    total += proc_cpu(int(entry.name))
            except OSError:
                continue
    return total


def send_level(port: int, level: Level, max_seconds: float, worker_pid: int | None = None) -> None:
    """C threads, one MLLP connection each, messages dealt round-robin; wait for each ACK."""
    chunks = [level.msgs[k::level.connections] for k in range(level.connections)]
    deadline = time.monotonic() + max_seconds
    barrier = threading.Barrier(level.connections + 1)
    lock = threading.Lock()

    def run(chunk: list[Msg]) -> None:
        try:
            with MLLPClient("127.0.0.1", port, encoding="utf-8") as client:
                barrier.wait(30)
                for m in chunk:
                    if time.monotonic() > deadline:
                        break
                    t0 = time.perf_counter()
                    ack = client.send_message(m.text)
                    m.latency = time.perf_counter() - t0
                    m.ack = ack.decode("utf-8") if isinstance(ack, bytes) else str(ack)
        except Exception as exc:  # noqa: BLE001 - reported as a failure
            with lock:
                level.errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in chunks]
    for t in threads:
        t.start()
    barrier.wait(30)
    cpu0, pg0 = tree_cpu(worker_pid) if worker_pid else 0.0, postgres_cpu()
    t0 = time.perf_counter()
    for t in threads:
        t.join(max_seconds + 60)
    level.seconds = time.perf_counter() - t0
    level.worker_cpu = (tree_cpu(worker_pid) - cpu0) if worker_pid else 0.0
    level.pg_cpu = postgres_cpu() - pg0
    level.sent = sum(1 for m in level.msgs if m.ack)


def ack_code(m: Msg) -> str:
    for seg in m.ack.replace("\n", "\r").split("\r"):
        if seg.startswith("MSA|"):
            parts = seg.split("|")
            return parts[1] if len(parts) > 2 and parts[2] == m.control else f"{parts[1]}(control {parts[2:3]})"
    return "none"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


# ------------------------------------------------------------------------------------ checks


def verify(url: str, msgs: list[Msg], run: str, resent: set[str] | None = None) -> dict[str, Any]:
    """Hard pass/fail over every message sent (ACK, rows stored exactly once, quarantine, critical values).
    `resent`: control ids sent again after a lost ACK (bench/county_day.py's kill -9): besides their one
    stored (or quarantined) row they may have rows recorded as resends (`duplicate`), never a second stored one."""
    from yilianti import db as dbmod
    from yilianti.models.audit import AuditEvent
    from yilianti.models.diagnostics import CriticalValue, DiagnosticOrder, InboundMessage, LabObservation

    sent = [m for m in msgs if m.ack]
    problems: list[str] = []
    bad_acks = [(m.control, ack_code(m)) for m in sent if ack_code(m) != ("AA" if m.known else "AE")]
    if bad_acks:
        problems.append(f"{len(bad_acks)} wrong ACKs, e.g. {bad_acks[:3]}")
    engine = dbmod.make_engine(url)
    with engine.connect() as conn:
        inbound = conn.execute(select(InboundMessage.control_id, InboundMessage.status,
                                      InboundMessage.accession_number, InboundMessage.id)
                               .where(InboundMessage.channel == "hl7")).all()
        by_control: dict[str, list[str]] = {}
        for control, status, _acc, _id in inbound:
            by_control.setdefault(control or "", []).append(status)
        for m in sent:
            want = ["stored"] if m.known else ["quarantined"]
            got = by_control.get(m.control)
            if got and resent and m.control in resent:
                got = [s for s in got if s != "duplicate"] if m.known else sorted(set(got))
            if got != want:
                problems.append(f"{m.control}: inbound {by_control.get(m.control)} (want {want})")
        quarantined = {c for c, statuses in by_control.items() for s in statuses if s in ("quarantined", "rejected")}
        expected_q = {m.control for m in sent if not m.known}
        if quarantined != expected_q:
            problems.append(f"quarantined/rejected {len(quarantined)} vs expected {len(expected_q)}: "
                            f"unexpected {sorted(quarantined - expected_q)[:5]}, missing {sorted(expected_q - quarantined)[:5]}")
        obs = dict(conn.execute(
            select(DiagnosticOrder.accession_number, func.count(LabObservation.id))
            .join(LabObservation, LabObservation.order_id == DiagnosticOrder.id)
            .where(DiagnosticOrder.accession_number.like(f"L{run}%"))  # this run's orders (others may share the database)
            .group_by(DiagnosticOrder.accession_number)).all())
        dup = conn.execute(select(LabObservation.order_id, LabObservation.set_id, func.count())
                           .group_by(LabObservation.order_id, LabObservation.set_id)
                           .having(func.count() > 1).limit(5)).all()
        if dup:
            problems.append(f"observations stored twice: {dup}")
        status = dict(conn.execute(select(DiagnosticOrder.accession_number, DiagnosticOrder.status)
                                   .where(DiagnosticOrder.accession_number.like(f"L{run}%"))).all())
        sent_known = {m.accession: m for m in sent if m.known}
        for acc, m in sent_known.items():
            if obs.get(acc, 0) != m.obx:
                problems.append(f"{acc}: {obs.get(acc, 0)} observations stored, sent {m.obx}")
            if status.get(acc) != "final":
                problems.append(f"{acc}: order {status.get(acc)} (want final)")
        unsent_touched = [a for a, s in status.items() if a not in sent_known and (s != "ordered" or obs.get(a))]
        if unsent_touched:
            problems.append(f"orders not sent but changed: {unsent_touched[:5]}")
        n_obs = sum(obs.values())
        if n_obs != sum(m.obx for m in sent_known.values()):
            problems.append(f"{n_obs} observations in all, sent {sum(m.obx for m in sent_known.values())}")
        n_crit = conn.scalar(select(func.count()).select_from(CriticalValue).where(CriticalValue.source == "hl7"))
        want_crit = sum(m.critical for m in sent_known.values())
        if n_crit != want_crit:
            problems.append(f"{n_crit} critical values, expected {want_crit}")
        n_audit = conn.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "diagnostics.result_received", AuditEvent.channel == "hl7"))
        if n_audit != len(sent_known):
            problems.append(f"{n_audit} result audit rows, expected {len(sent_known)}")
    engine.dispose()
    return {"sent": len(sent), "stored": len(sent_known), "quarantined": len(expected_q),
            "observations": n_obs, "critical_values": n_crit, "problems": problems[:20],
            "problem_count": len(problems)}


def reference() -> dict[str, Any]:
    if not PG_REFERENCE.exists() or shutil.which("pgbench") is None:
        return {}
    try:
        out = subprocess.run(["bash", str(PG_REFERENCE), "tx", "8", "5"], capture_output=True, text=True,
                             timeout=90).stdout.strip().splitlines()
    except subprocess.TimeoutExpired:
        return {}
    if not out:
        return {}
    return {k: v for k, v in (p.split("=", 1) for p in out[-1].split() if "=" in p)}


# ------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000, help="messages per connection level")
    ap.add_argument("--large", action="store_true", help="10,000 messages per level")
    ap.add_argument("--connections", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--obx", type=int, default=5, help="OBX segments per message")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="per level: stop sending after this (default 120, 300 with --large)")
    ap.add_argument("--admin-url", default=os.environ.get("YILIANTI_BENCH_PG",
                                                          "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--database-url", default=None, help="use this database as is (e.g. SQLite) instead of a fresh one")
    ap.add_argument("--no-reference", action="store_true", help="skip pg_reference.sh tx 8 5")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--processes", type=int, default=1, help="HL7 receiver processes (YILIANTI_HL7_PROCESSES)")
    ap.add_argument("--writers", type=int, default=4, help="asyncpg writers per process (YILIANTI_HL7_WRITERS)")
    ap.add_argument("--reference-path", action="store_true",
                    help="the reference receiver (ORM, one transaction per message) instead of the lean path")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    per_level = 10_000 if a.large else a.messages
    max_seconds = a.max_seconds or (300.0 if a.large else 120.0)
    run = time.strftime("%H%M%S")
    warmup = 50
    total = warmup + per_level * len(a.connections)
    work = Path(tempfile.mkdtemp(prefix="ylt-hl7-bench-"))
    os.environ.setdefault("YILIANTI_VAR_DIR", str(work / "var"))
    admin = None
    dbname = f"ylt_bench_hl7_{run}"
    if a.database_url:
        url = a.database_url
    else:
        import psycopg

        admin = psycopg.connect(a.admin_url, autocommit=True)
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        admin.execute(f'CREATE DATABASE "{dbname}"')
        url = a.admin_url.rsplit("/", 1)[0] + f"/{dbname}"
    worker: Worker | None = None
    try:
        from yilianti.migrate import upgrade

        upgrade(url)
        orders, load_s = create_orders(url, total, run)
        print(f"nproc={os.cpu_count()} db={url.split(':')[0]} orders={total:,} (inserted in {load_s:.1f}s) "
              f"messages/level={per_level:,} connections={a.connections} obx={a.obx} "
              f"path={'reference' if a.reference_path else 'lean'} processes={a.processes} writers={a.writers} "
              f"load={os.getloadavg()[0]:.1f}",
              flush=True)
        rng = random.Random(7)
        msgs: list[Msg] = []
        for k, (accession, name, rid, birth) in enumerate(orders):
            known = k % 100 != 99  # 1 %: an accession the platform never issued → AE + quarantine
            critical = known and k % 50 == 7  # 2 %: one HH (critical) value
            control = f"B{run}{k:07d}"
            acc = accession if known else f"X{accession}"
            body, hh = build_message(rng, control, acc, name, rid, birth, critical, a.obx)
            msgs.append(Msg(control, accession, body, a.obx if known else 0, hh, known))
        worker = Worker(url, work, {"YILIANTI_HL7_PROCESSES": str(a.processes), "YILIANTI_HL7_WRITERS": str(a.writers),
                                    "YILIANTI_HL7_FAST_PATH": "0" if a.reference_path else "1"})
        port = worker.start()
        ref_before = {} if a.no_reference else reference()
        warm = Level(2, msgs[:warmup])
        send_level(port, warm, 60)
        levels = []
        offset = warmup
        for c in a.connections:
            level = Level(c, msgs[offset:offset + per_level])
            offset += per_level
            send_level(port, level, max_seconds, worker.proc.pid if worker.proc else None)
            levels.append(level)
            lat = [m.latency * 1000 for m in level.msgs if m.ack]
            rate = level.sent / level.seconds if level.seconds else 0.0
            print(f"connections={c} sent={level.sent}/{len(level.msgs)} {level.seconds:.1f}s {rate:.1f} msg/s "
                  f"p50={pct(lat, 0.5):.1f} ms p99={pct(lat, 0.99):.1f} ms ({rate / PEAK:.2f} of {PEAK:.0f}/s) "
                  f"worker CPU {1000 * level.worker_cpu / max(level.sent, 1):.1f} ms/msg, postgres CPU "
                  f"{1000 * level.pg_cpu / max(level.sent, 1):.1f} ms/msg"
                  + (f" errors={level.errors[:2]}" if level.errors else ""), flush=True)
        ref_after = {} if a.no_reference else reference()
        worker.stop()
        worker = None
        check = verify(url, msgs, run)
    finally:
        if worker is not None:
            worker.stop()
        if admin is not None:
            if not a.keep:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            admin.close()
    refs = [float(r["tps"]) for r in (ref_before, ref_after) if r.get("tps")]
    ref_tps = statistics.median(refs) if refs else None
    print()
    print("| connections | messages | seconds | msg/s | ÷ 500/s peak | p50 ACK ms | p99 ACK ms "
          "| worker CPU ms/msg | PostgreSQL CPU ms/msg |" + (" ÷ ref tx tps |" if ref_tps else ""))
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if ref_tps else ""))
    rows = []
    for level in levels:
        lat = [m.latency * 1000 for m in level.msgs if m.ack]
        rate = level.sent / level.seconds if level.seconds else 0.0
        rows.append({"connections": level.connections, "sent": level.sent, "seconds": level.seconds,
                     "per_s": rate, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "errors": level.errors,
                     "worker_cpu_s": level.worker_cpu, "pg_cpu_s": level.pg_cpu})
        n = max(level.sent, 1)
        print(f"| {level.connections} | {level.sent:,} | {level.seconds:.1f} | {rate:.1f} | {rate / PEAK:.2f} | "
              f"{pct(lat, 0.5):.1f} | {pct(lat, 0.99):.1f} | {1000 * level.worker_cpu / n:.1f} | "
              f"{1000 * level.pg_cpu / n:.1f} |" + (f" {rate / ref_tps:.3f} |" if ref_tps else ""))
    print(f"\nreference tx (pgbench c=8, 5 s) before/after: {ref_before.get('tps', '–')} / {ref_after.get('tps', '–')} tps")
    print(f"correctness: sent {check['sent']:,}, stored {check['stored']:,} (AA), quarantined {check['quarantined']} "
          f"(AE, unknown accession), observations {check['observations']:,}, critical values "
          f"{check['critical_values']}; problems: {check['problem_count']}")
    for p in check["problems"]:
        print("  FAIL", p)
    if a.json:
        Path(a.json).write_text(json.dumps({"levels": rows, "check": check, "ref_before": ref_before,
                                            "ref_after": ref_after}, indent=1, default=str))
    shutil.rmtree(work, ignore_errors=True)
    errors = [e for level in levels for e in level.errors] + warm.errors
    if check["problem_count"] or errors:
        print("FAILED", errors[:3])
        sys.exit(1)
    print("PASSED")


if __name__ == "__main__":
    main()
