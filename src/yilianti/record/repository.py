"""Queries of the shared record's detail views (the access rule is record/service.py's, never here)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yilianti.diagnostics.states import SIGNED
from yilianti.models.diagnostics import DiagnosticOrder, DiagnosticReport, ImagingStudy, LabObservation
from yilianti.models.diagnostics_media import EcgRecording


def order_of_patient(db: Session, patient_id: int, order_id: int) -> DiagnosticOrder | None:
    return db.scalar(select(DiagnosticOrder).where(DiagnosticOrder.id == order_id,
                                                   DiagnosticOrder.patient_id == patient_id))


def signed_report(db: Session, order_id: int) -> DiagnosticReport | None:
    """The order's report once signed (a preliminary report waits for its second signature)."""
    return db.scalar(select(DiagnosticReport).where(DiagnosticReport.order_id == order_id,
                                                    DiagnosticReport.status.in_(sorted(SIGNED))))


def observations_of(db: Session, order_id: int) -> list[LabObservation]:
    return list(db.scalars(select(LabObservation).where(LabObservation.order_id == order_id)
                           .order_by(LabObservation.set_id, LabObservation.id)))


def media_of(db: Session, order_id: int) -> tuple[int, int]:
    """(imaging studies, ECG recordings) of an order."""
    studies = db.scalar(select(func.count()).select_from(ImagingStudy).where(ImagingStudy.order_id == order_id)) or 0
    ecgs = db.scalar(select(func.count()).select_from(EcgRecording).where(EcgRecording.order_id == order_id)) or 0
    return studies, ecgs


def lab_series(db: Session, patient_id: int, code: str, limit: int = 500) -> list[tuple[LabObservation, DiagnosticOrder]]:
    """One test's observations of a patient (by observation code), oldest first, with their orders."""
    rows = db.execute(select(LabObservation, DiagnosticOrder)
                      .join(DiagnosticOrder, DiagnosticOrder.id == LabObservation.order_id)
                      .where(DiagnosticOrder.patient_id == patient_id, LabObservation.code == code)
                      .order_by(func.coalesce(LabObservation.observed_at, LabObservation.created_at).desc(),
                                LabObservation.id.desc()).limit(limit))
    return [(ob, order) for ob, order in reversed(rows.all())]
