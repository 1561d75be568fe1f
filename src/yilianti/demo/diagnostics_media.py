"""Demo images and ECG for the shared diagnostic centre (issue 6): what 马文静 opens in the viewer.

Today's open CT orders of 渠口镇卫生院 (loaded by demo/diagnostics.py) get a synthetic CT series
— a head or chest phantom in Hounsfield units (skull, grey/white matter and ventricles; or lungs with
vessels, mediastinum, spine), so the lung, mediastinum, bone and brain presets each show something —
and today's open 12-lead ECG gets pydicom's real 12-lead waveform. Both go through the same path as a
modality's C-STORE (file under var/dicom, `ingest.ingest_dicom`), the ECG then through
`ecg.import_received`.

`python -m yilianti.demo.diagnostics_media ACCESSION OUTDIR [head|chest]` writes such a series for
any accession number, to send with dcmtk: `storescu -aec YILIANTI 127.0.0.1 11112 OUTDIR/*.dcm`.
"""

from __future__ import annotations

import sys
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.config import get_settings
from yilianti.demo import loader
from yilianti.diagnostics.ecg import service as ecg
from yilianti.diagnostics.receivers import ingest
from yilianti.diagnostics.receivers.dicom import instance_path
from yilianti.kit import clock
from yilianti.models.alliance import Institution
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder, ImagingStudy

__all__ = ["MARKER_ACTION", "ct_series", "is_loaded", "load"]

MARKER_ACTION = "demo_load_diagnostics_media"
SIZE, SLICES, SPACING, THICKNESS = 256, 24, 0.9, 5.0
OPEN = ("received", "claimed", "transmitted", "acquired", "ordered")


def _phantom(kind: str, z: float, rng: np.random.Generator) -> np.ndarray:
    """Hounsfield units of one axial slice; z in 0..1 from bottom to top."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    cx = cy = SIZE / 2

    def ellipse(x0: float, y0: float, a: float, b: float) -> np.ndarray:
        return ((xx - x0) / a) ** 2 + ((yy - y0) / b) ** 2 <= 1.0

    hu = np.full((SIZE, SIZE), -1000.0)  # air
    if kind == "head":
        scale = np.sqrt(max(1.0 - ((z - 0.45) / 0.7) ** 2, 0.2))
        a, b = 95 * scale, 115 * scale
        hu[ellipse(cx, cy, a + 3, b + 3)] = 30.0  # scalp
        hu[ellipse(cx, cy, a, b)] = 900.0  # skull
        hu[ellipse(cx, cy, a - 7, b - 7)] = 38.0  # grey matter
        hu[ellipse(cx, cy, a - 22, b - 22)] = 28.0  # white matter
        hu[ellipse(cx - 12, cy - 10, 6, 22 * scale)] = 6.0  # lateral ventricles (CSF)
        hu[ellipse(cx + 12, cy - 10, 6, 22 * scale)] = 6.0
        if 0.4 < z < 0.6:
            hu[ellipse(cx + 40, cy + 30, 9, 7)] = 65.0  # a small hyperdense focus (for the brain window)
    else:
        hu[ellipse(cx, cy, 118, 88)] = 40.0  # soft tissue
        hu[ellipse(cx, cy, 112, 82)] = -90.0  # fat
        hu[ellipse(cx, cy, 106, 76)] = 45.0  # muscle / mediastinum
        lung = 1.0 - abs(z - 0.55) * 0.8
        hu[ellipse(cx - 52, cy - 4, 40 * lung, 58 * lung)] = -850.0  # lungs
        hu[ellipse(cx + 52, cy - 4, 40 * lung, 58 * lung)] = -850.0
        for k in range(14):  # vessels in the lungs
            side = -1 if k % 2 else 1
            vx = cx + side * (30 + rng.uniform(5, 45) * lung)
            vy = cy - 4 + rng.uniform(-45, 45) * lung
            hu[ellipse(vx, vy, 2.2, 2.2)] = 40.0
        if 0.45 < z < 0.6:
            hu[ellipse(cx + 60, cy + 20, 3.5, 3.5)] = 30.0  # the 4 mm nodule of the report
        hu[ellipse(cx + 10, cy + 12, 30, 24)] = 50.0  # heart
        hu[ellipse(cx - 8, cy - 26, 9, 9)] = 45.0  # aorta
        hu[ellipse(cx, cy + 58, 15, 13)] = 700.0  # vertebral body
        hu[ellipse(cx, cy + 58, 9, 8)] = 250.0  # cancellous bone
        for side in (-1, 1):
            hu[ellipse(cx + side * 90, cy + 25, 6, 4)] = 650.0  # ribs
    return hu + rng.normal(0, 6, hu.shape)


def ct_series(accession: str, kind: str, patient_name: str = "DEMO", patient_id: str = "") -> list[Dataset]:
    """A synthetic axial CT series (int16 stored, RescaleIntercept -1024) with the given accession."""
    # a stable seed: Python's hash() of a str changes per process, which made the demo differ per run
    rng = np.random.default_rng(zlib.crc32(f"{accession}|{kind}".encode()))
    study, series = generate_uid(), generate_uid()
    now = clock.now().astimezone(clock.SHANGHAI)
    out = []
    for i in range(SLICES):
        hu = _phantom(kind, i / (SLICES - 1), rng)
        stored = np.clip(np.round(hu + 1024), 0, 4095).astype(np.int16)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.AccessionNumber = accession
        ds.PatientName, ds.PatientID = patient_name, patient_id
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Chinese descriptions
        ds.Modality = "CT"
        ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
        ds.StudyTime = now.strftime("%H%M%S")
        ds.StudyDescription = "头颅CT平扫" if kind == "head" else "胸部CT平扫"
        ds.SeriesDescription = "Axial 5mm"
        ds.SeriesNumber, ds.InstanceNumber = 2, i + 1
        ds.ImagePositionPatient = [-SIZE * SPACING / 2, -SIZE * SPACING / 2, i * THICKNESS]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation, ds.SliceThickness = i * THICKNESS, THICKNESS
        ds.PixelSpacing = [SPACING, SPACING]
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = (40, 80) if kind == "head" else (-600, 1500)
        ds.PixelData = stored.tobytes()
        out.append(ds)
    return out


def _store(db: Session, ds: Dataset, calling_ae: str) -> None:
    path = instance_path(get_settings().var_dir / "dicom", str(ds.StudyInstanceUID), str(ds.SOPInstanceUID))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    ingest.ingest_dicom(db, ds, path, calling_ae=calling_ae)


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION).limit(1)) is not None


def load(db: Session) -> dict[str, int]:
    township = db.scalar(select(Institution).where(Institution.name == loader.TOWNSHIP))
    if township is None:
        return {}
    orders = list(db.scalars(select(DiagnosticOrder).where(
        DiagnosticOrder.ordering_institution_id == township.id, DiagnosticOrder.status.in_(OPEN),
        DiagnosticOrder.item_code.in_(("CT-HEAD", "CT-CHEST", "ECG-12"))).order_by(DiagnosticOrder.id)))
    counts = {"ct_studies": 0, "ecg_recordings": 0}
    waveform = Path(pydicom.data.__file__).parent / "test_files" / "waveform_ecg.dcm"
    for order in orders:
        if db.scalar(select(ImagingStudy.id).where(ImagingStudy.order_id == order.id).limit(1)) is not None:
            continue
        if order.item_code == "ECG-12":
            ds = pydicom.dcmread(waveform)
            ds.AccessionNumber = order.accession_number
            ds.StudyInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            _store(db, ds, "QUKOU_ECG")
            if ecg.import_received(db, order) is not None:
                counts["ecg_recordings"] += 1
        else:
            for slice_ in ct_series(order.accession_number, "head" if order.item_code == "CT-HEAD" else "chest"):
                _store(db, slice_, "QUKOU_CT")
            counts["ct_studies"] += 1
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, "v1", channel="cli",
                 detail={**counts, "at": datetime.now().isoformat(timespec="seconds")})
    db.flush()
    return counts


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python -m yilianti.demo.diagnostics_media ACCESSION OUTDIR [head|chest]")
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    kind = argv[2] if len(argv) > 2 and argv[2] in ("head", "chest") else "chest"
    for ds in ct_series(argv[0], kind):
        ds.save_as(out / f"{int(ds.InstanceNumber):03d}.dcm", enforce_file_format=True)
    print(f"{SLICES} slices for {argv[0]} in {out}; send: storescu -aec YILIANTI 127.0.0.1 11112 {out}/*.dcm")


if __name__ == "__main__":
    main(sys.argv[1:])
