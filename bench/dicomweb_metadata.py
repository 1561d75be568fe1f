"""WADO-RS series metadata: the first call, with the documents made at ingest vs parsed from the files (issue 21).

One series of N CT instances (pydicom's CT_small.dcm, 128×128, new UIDs each) is stored through the C-STORE
receiver's ingest (`ingest.ingest_dicom`, which makes each instance's document) on a fresh database. Then, in
interleaved pairs, the service call behind `GET /dicomweb/studies/{study}/series/{series}/metadata`
(`dicomweb.service.metadata`: access check, audit, answer bytes) runs
  - "files": with the documents removed (in a transaction rolled back after the call), so every instance is
    parsed from its file — what each first call cost before documents were made at ingest;
  - "stored": with the documents in place (also rolled back, so nothing accumulates).
Caches are cold in both: the process parsed no file before (the old per-file cache is gone). Median per pair.
Last, what ingest now pays per instance to make its document from the data set in hand.

    .venv/bin/python bench/dicomweb_metadata.py [--instances 300] [--pairs 5]
    .venv/bin/python bench/dicomweb_metadata.py --postgresql postgresql://postgres@127.0.0.1:5432

With --postgresql the database ylt_bench_dicomweb there is dropped and created (bench/booking.py's fresh_database).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pydicom
import pydicom.data
from pydicom.uid import generate_uid
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def build(factory: sessionmaker[Session], storage: Path, n: int) -> tuple[object, str, str]:
    """The order, its reader, and N instances of one series ingested; (subject, study UID, series UID)."""
    from yilianti.auth import service as auth
    from yilianti.diagnostics.receivers import ingest
    from yilianti.diagnostics.receivers.dicom import instance_path
    from yilianti.kit import clock
    from yilianti.models.alliance import Institution
    from yilianti.models.diagnostics import DiagnosticOrder
    from yilianti.models.patient import CareRelationship, Patient

    accession, study_uid, series_uid = f"DWB{int(time.time())}", generate_uid(), generate_uid()
    with factory() as db:
        inst = Institution(name=f"基准医院{accession}", kind="general", level=2, province="河北")
        db.add(inst)
        db.flush()
        patient = Patient(name="基准", sex="男", birth_date=date(1960, 1, 1), registered_by_institution_id=inst.id)
        db.add(patient)
        db.flush()
        db.add(CareRelationship(patient_id=patient.id, institution_id=inst.id, kind="registered",
                                started_at=clock.now()))
        db.add(DiagnosticOrder(accession_number=accession, patient_id=patient.id, ordering_institution_id=inst.id,
                               reading_centre_institution_id=inst.id, kind="imaging", modality="CT",
                               item_code="CT001", item_name="胸部CT平扫"))
        user = auth.create_user(db, None, f"bench{accession}", "Bench-passw0rd!", "基准医生",
                                [("doctor", inst.id, None)])
        subject = auth.build_subject(db, user, inst.id)
        template = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
        for k in range(n):
            ds = template.copy()
            ds.AccessionNumber, ds.StudyInstanceUID, ds.SeriesInstanceUID = accession, study_uid, series_uid
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.InstanceNumber = k + 1
            path = instance_path(storage, study_uid, ds.SOPInstanceUID)
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            ingest.ingest_dicom(db, ds, path, calling_ae="BENCH")
        db.commit()
    return subject, study_uid, series_uid


def timed(factory: sessionmaker[Session], subject: object, study: str, series: str, without_documents: bool) -> float:
    from yilianti.diagnostics.dicomweb import service
    from yilianti.models.diagnostics import ImagingInstanceMetadata

    with factory() as db:
        if without_documents:
            db.execute(delete(ImagingInstanceMetadata))
            db.flush()
        t0 = time.perf_counter()
        body = service.metadata(db, subject, "http://bench", study, series)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - t0
        assert body.startswith(b"[{") and b"http://bench/dicomweb/studies/" in body
        db.rollback()
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--postgresql", default="", help="a server's URL without database name")
    args = ap.parse_args()

    from yilianti import db as dbmod
    from yilianti.config import get_settings
    from yilianti.migrate import upgrade

    work = Path(tempfile.mkdtemp(prefix="ylt-dw-bench-"))
    if args.postgresql:
        sys.path.insert(0, str(ROOT / "bench"))
        from booking import fresh_database

        url = fresh_database(args.postgresql.rstrip("/"), "ylt_bench_dicomweb")
    else:
        url = f"sqlite:///{work / 'bench.db'}"
        upgrade(url)
    settings = get_settings()
    settings.var_dir = work
    engine = dbmod.make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    t0 = time.perf_counter()
    subject, study, series = build(factory, work / "dicom", args.instances)
    print(f"{args.instances} instances ingested in {time.perf_counter() - t0:.1f} s ({engine.dialect.name})")
    files, stored = [], []
    for _ in range(args.pairs):
        files.append(timed(factory, subject, study, series, True))
        stored.append(timed(factory, subject, study, series, False))
    n = args.instances
    for name, runs in (("files", files), ("stored", stored)):
        print(f"{name:7s} " + " ".join(f"{r * 1000:.0f}" for r in runs) + f" ms; median {statistics.median(runs) * 1000:.0f} ms"
              f" = {statistics.median(runs) / n * 1000:.2f} ms/instance")
    from yilianti.diagnostics.dicomweb import document

    sample = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    t0 = time.perf_counter()
    for _ in range(n):
        document.document(sample)
    print(f"making a document at ingest (in-memory data set): {(time.perf_counter() - t0) / n * 1000:.2f} ms/instance")
    ratios = [f / s for f, s in zip(files, stored, strict=True)]
    print(f"files/stored per pair: {' '.join(f'{r:.1f}' for r in ratios)}; median {statistics.median(ratios):.1f}×")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
