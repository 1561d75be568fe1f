"""Shared set-up for the imaging viewer and ECG tests: a township order read by a county centre."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pydicom
import pydicom.data
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests import builders as b
from yilianti.kit import clock
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import CareRelationship, Patient, PatientIdentifier

_seq = itertools.count(1)
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"  # never get_testdata_file: it may go online


def sample(name: str) -> Path:
    path = TEST_FILES / name
    assert path.exists(), path
    return path


@dataclass
class Setup:
    order_id: int
    patient_id: int
    accession: str
    reader: str  # county reader (care relationship)
    outsider: str  # a doctor of an unrelated hospital


def order_setup(db: Session, kind: str = "imaging", modality: str | None = "CT",
                accession: str | None = None) -> Setup:
    n = next(_seq)
    accession = accession or f"{'ECG' if kind == 'ecg' else 'CT'}M{clock.now():%H%M%S}{n:04d}"
    township = b.institution(db, f"渠口镇卫生院M{n}{accession}", kind="grassroots", level=1)
    county = b.institution(db, f"香河县人民医院M{n}{accession}", level=2)
    other = b.institution(db, f"无关医院M{n}{accession}", level=2)
    patient = Patient(name="张三丰", sex="男", birth_date=date(1965, 1, 1), registered_by_institution_id=township.id)
    db.add(patient)
    db.flush()
    db.add(PatientIdentifier(patient_id=patient.id, authority="CN-RIC", value=b.resident_id(date(1965, 1, 1))))
    for inst in (township, county):
        db.add(CareRelationship(patient_id=patient.id, institution_id=inst.id, kind="diagnostic_order",
                                started_at=clock.now()))
    order = DiagnosticOrder(accession_number=accession, patient_id=patient.id,
                            ordering_institution_id=township.id, reading_centre_institution_id=county.id,
                            kind=kind, modality=modality, item_code="ECG001" if kind == "ecg" else "CT001",
                            item_name="十二导联心电图" if kind == "ecg" else "胸部CT平扫")
    db.add(order)
    db.flush()
    reader = b.user(db, county, "doctor", username=f"reader_m{n}_{accession.lower()}")
    outsider = b.user(db, other, "doctor", username=f"outsider_m{n}_{accession.lower()}")
    return Setup(order.id, patient.id, accession, reader.username, outsider.username)


def committed_setup(factory: sessionmaker[Session], **kw: object) -> Setup:
    with factory() as db:
        s = order_setup(db, **kw)  # type: ignore[arg-type]
        db.commit()
        return s


def logged_in(app: object, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, raise_server_exceptions=False)  # type: ignore[arg-type]
    return client, b.login(client, username)


def synthetic_ecg(rate_bpm: float, seconds: float = 10.0, fs: float = 500.0, axis_deg: float = 60.0,
                  noise_uv: float = 20.0, seed: int = 1) -> dict[str, list[float]]:
    """12 leads (µV) with P, QRS and T waves at a known rate and frontal axis, plus noise and wander."""
    import math

    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    beat = 60.0 / rate_bpm
    base = np.zeros_like(t)
    for start in np.arange(0.3, seconds, beat):
        base += 150 * np.exp(-((t - (start - 0.16)) / 0.025) ** 2)  # P
        base += -120 * np.exp(-((t - (start - 0.025)) / 0.008) ** 2)  # Q
        base += 1200 * np.exp(-((t - start) / 0.012) ** 2)  # R
        base += -250 * np.exp(-((t - (start + 0.03)) / 0.01) ** 2)  # S
        base += 300 * np.exp(-((t - (start + 0.28)) / 0.05) ** 2)  # T
    wander = 80 * np.sin(2 * math.pi * 0.3 * t)
    # frontal-plane projections of the same dipole: lead angles per the hexaxial system
    angles = {"I": 0, "II": 60, "III": 120, "aVR": -150, "aVL": -30, "aVF": 90}
    leads: dict[str, list[float]] = {}
    for name, angle in angles.items():
        gain = math.cos(math.radians(axis_deg - angle))
        leads[name] = list(base * gain + wander + rng.normal(0, noise_uv, len(t)))
    for k, name in enumerate(["V1", "V2", "V3", "V4", "V5", "V6"]):
        gain = -0.8 + 0.35 * k
        leads[name] = list(base * gain + wander + rng.normal(0, noise_uv, len(t)))
    return leads


def ecg_csv(leads: dict[str, list[float]], fs: float = 500.0, header_rate: bool = True) -> str:
    names = list(leads)
    lines = [f"# sample_rate_hz: {fs:g}", "# units: uV"] if header_rate else []
    lines.append(",".join(["time_ms", *names]))
    for i in range(len(leads[names[0]])):
        lines.append(",".join([f"{i * 1000 / fs:g}", *[f"{leads[n][i]:.1f}" for n in names]]))
    return "\n".join(lines) + "\n"
