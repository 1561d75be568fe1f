"""DICOM ingest benchmark: dcmtk storescu → our C-STORE receiver, side by side with storescu → Orthanc.

Both receivers run on 127.0.0.1 in the same run; pairs are interleaved (ours, Orthanc, ours, ...)
and the ratio ours/Orthanc is taken per pair, median reported (PERFORMANCE.md protocol).
The instances are synthetic 512×512 16-bit CT slices (≈ 0.5 MB each, one study, one accession
that matches an order, so every instance takes the real path: file write + study/instance rows +
inbound message + audit row, one transaction per instance).

    .venv/bin/python bench/dicom_ingest.py                      # 300 instances, 3 pairs, 1 and 4 senders
    .venv/bin/python bench/dicom_ingest.py --instances 100 --pairs 2 --senders 1
    .venv/bin/python bench/dicom_ingest.py --database-url postgresql://postgres@127.0.0.1:5432/bench_dicom

Needs Debian `dcmtk` (storescu) and, for the comparison, `orthanc`. Bounded: every storescu
run has a timeout; all servers are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
from pydicom.uid import generate_uid
from sqlalchemy.orm import sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

ORTHANC = shutil.which("Orthanc") or shutil.which("/usr/sbin/Orthanc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_instances(folder: Path, n: int, accession: str, size: int = 512) -> int:
    """n synthetic CT slices (size × size pixels) of one study; returns the total bytes."""
    base = pydicom.dcmread(Path(pydicom.data.__file__).parent / "test_files" / "CT_small.dcm")
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:size, 0:size]
    body = ((xx - size // 2) ** 2 + (yy - size // 2) ** 2 < (size * 220 // 512) ** 2).astype(np.int16)
    study, series = generate_uid(), generate_uid()
    total = 0
    for i in range(n):
        ds = base.copy()
        ds.file_meta = base.file_meta.copy()
        pixels = (body * (1000 + rng.integers(0, 80, (size, size)))).astype(np.int16)
        ds.Rows, ds.Columns = size, size
        ds.PixelData = pixels.tobytes()
        ds.AccessionNumber = accession
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        path = folder / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    return total


def send(port: int, called: str, files: list[Path], senders: int, timeout: float = 600) -> float:
    """Wall time for `senders` storescu processes sending `files` between them (one association each)."""
    chunks = [files[k::senders] for k in range(senders)]
    start = time.perf_counter()
    procs = [subprocess.Popen(["storescu", "-aet", "BENCH", "-aec", called, "127.0.0.1", str(port),
                               *[str(p) for p in chunk]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for chunk in chunks if chunk]
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode(errors='replace')[-400:]}")
    return time.perf_counter() - start


class Ours:
    def __init__(self, url: str, work: Path) -> None:
        from yilianti import db as dbmod
        from yilianti.migrate import upgrade

        upgrade(url)
        self.engine = dbmod.make_engine(url)
        self.factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.work = work
        self.accession = f"BENCH{int(time.time())}"
        with self.factory() as db:
            from yilianti.models.alliance import Institution
            from yilianti.models.diagnostics import DiagnosticOrder
            from yilianti.models.patient import Patient

            inst = Institution(name=f"基准测试卫生院{self.accession}", kind="grassroots", level=1, province="河北")
            db.add(inst)
            db.flush()
            patient = Patient(name="基准", sex="男", birth_date=date(1960, 1, 1), registered_by_institution_id=inst.id)
            db.add(patient)
            db.flush()
            db.add(DiagnosticOrder(accession_number=self.accession, patient_id=patient.id,
                                   ordering_institution_id=inst.id, kind="imaging", modality="CT",
                                   item_code="CT001", item_name="胸部CT平扫"))
            db.commit()
        self.rx = None
        self.run_no = 0

    def start(self) -> int:
        from yilianti.diagnostics.receivers.dicom import DicomReceiver

        self.run_no += 1
        self.rx = DicomReceiver(self.factory, "127.0.0.1", free_port(), "YILIANTI",
                                self.work / f"ours{self.run_no}").start()
        return self.rx.port

    def stop(self) -> None:
        if self.rx is not None:
            self.rx.stop()
            self.rx = None
        shutil.rmtree(self.work / f"ours{self.run_no}", ignore_errors=True)


class Orthanc:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.run_no = 0

    def start(self) -> int:
        import httpx

        self.run_no += 1
        root = self.work / f"orthanc{self.run_no}"
        root.mkdir()
        port, http = free_port(), free_port()
        config = {"Name": "BENCH", "StorageDirectory": str(root), "IndexDirectory": str(root), "HttpPort": http,
                  "DicomPort": port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
                  "AuthenticationEnabled": False, "Plugins": [], "StorageCompression": False,
                  "DicomCheckCalledAet": False}
        (root / "orthanc.json").write_text(json.dumps(config))
        assert ORTHANC
        self.proc = subprocess.Popen([ORTHANC, str(root / "orthanc.json")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{http}/system", timeout=1).status_code == 200:
                    return port
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("Orthanc did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
        shutil.rmtree(self.work / f"orthanc{self.run_no}", ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--senders", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file in the work dir")
    ap.add_argument("--json", default=None, help="write the raw results here")
    args = ap.parse_args()
    if shutil.which("storescu") is None:
        sys.exit("storescu missing: apt-get install dcmtk")
    work = Path(tempfile.mkdtemp(prefix="ylt-dicom-bench-"))
    os.environ.setdefault("YILIANTI_VAR_DIR", str(work / "var"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    ours = Ours(url, work)
    orthanc = Orthanc(work) if ORTHANC else None
    data = work / "data"
    data.mkdir()
    total = make_instances(data, args.instances, ours.accession)
    files = sorted(data.glob("*.dcm"))
    print(f"nproc={os.cpu_count()} instances={len(files)} total={total / 1e6:.1f} MB "
          f"db={'sqlite' if url.startswith('sqlite') else 'postgresql'} orthanc={'yes' if orthanc else 'no'}",
          flush=True)
    results: list[dict[str, object]] = []
    try:
        # warm-up (page cache, imports)
        port = ours.start()
        send(port, "YILIANTI", files[:20], 1)
        ours.stop()
        for senders in args.senders:
            for pair in range(args.pairs):
                row: dict[str, object] = {"senders": senders, "pair": pair}
                port = ours.start()
                t = send(port, "YILIANTI", files, senders)
                ours.stop()
                row["ours_s"] = t
                if orthanc:
                    port = orthanc.start()
                    t2 = send(port, "ORTHANC", files, senders)
                    orthanc.stop()
                    row["orthanc_s"] = t2
                results.append(row)
                o = row["ours_s"]
                print(f"senders={senders} pair={pair} ours {len(files) / o:.1f} inst/s {total / o / 1e6:.1f} MB/s"
                      + (f" | orthanc {len(files) / t2:.1f} inst/s {total / t2 / 1e6:.1f} MB/s"
                         f" | ratio {t2 / o:.2f}" if orthanc else ""), flush=True)
    finally:
        ours.stop()
        if orthanc:
            orthanc.stop()
    print()
    print("| senders | ours inst/s | ours MB/s | Orthanc inst/s | Orthanc MB/s | median ratio ours/Orthanc |")
    print("|---|---|---|---|---|---|")
    for senders in args.senders:
        rows = [r for r in results if r["senders"] == senders]
        ours_t = statistics.median(float(r["ours_s"]) for r in rows)  # type: ignore[arg-type]
        line = f"| {senders} | {len(files) / ours_t:.1f} | {total / ours_t / 1e6:.1f} |"
        if orthanc:
            orth_t = statistics.median(float(r["orthanc_s"]) for r in rows)  # type: ignore[arg-type]
            ratio = statistics.median(float(r["orthanc_s"]) / float(r["ours_s"]) for r in rows)  # type: ignore[arg-type]
            line += f" {len(files) / orth_t:.1f} | {total / orth_t / 1e6:.1f} | {ratio:.2f} |"
        else:
            line += " — | — | — |"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"instances": len(files), "bytes": total, "results": results}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
