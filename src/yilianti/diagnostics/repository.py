"""Queries of the diagnostics domain (catalogue, orders, ECG recordings) for its pages and routes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.models.alliance import Institution
from yilianti.models.diagnostics import DiagnosticItem, DiagnosticOrder
from yilianti.models.diagnostics_media import EcgRecording


def is_reading_centre(db: Session, institution_id: int | None) -> bool:
    """Whether the institution reads for at least one catalogue item."""
    return institution_id is not None and db.scalar(select(DiagnosticItem.id).where(
        DiagnosticItem.reading_centre_institution_id == institution_id).limit(1)) is not None


def reading_centre_choices(db: Session) -> list[tuple[int, str]]:
    """(id, name) of the institutions that read for some catalogue item, by name."""
    return [(i, n) for i, n in db.execute(select(Institution.id, Institution.name).where(Institution.id.in_(
        select(DiagnosticItem.reading_centre_institution_id).distinct())).order_by(Institution.name))]


def order_id_by_accession(db: Session, accession_number: str) -> int | None:
    return db.scalar(select(DiagnosticOrder.id).where(DiagnosticOrder.accession_number == accession_number))


def ecg_recordings_of(db: Session, order_id: int) -> list[EcgRecording]:
    """ECG recordings of one order, oldest first."""
    return list(db.scalars(select(EcgRecording).where(EcgRecording.order_id == order_id).order_by(EcgRecording.id)))


def orders_with_ids(db: Session, ids: list[int]) -> list[DiagnosticOrder]:
    """The orders with these ids (no access check: the caller filters by patient)."""
    return list(db.scalars(select(DiagnosticOrder).where(DiagnosticOrder.id.in_(ids))))
