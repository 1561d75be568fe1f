"""Queries of critical transfers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Institution
from yilianti.models.patient import Patient
from yilianti.models.transfer import CriticalTransfer, TransferMilestone


def transfers_of_referral(db: Session, referral_id: int) -> list[CriticalTransfer]:
    """Critical transfers started from one referral, oldest first."""
    return list(db.scalars(select(CriticalTransfer).where(CriticalTransfer.referral_id == referral_id)
                           .order_by(CriticalTransfer.id)))


def transfer(db: Session, transfer_id: int, *, for_update: bool = False) -> CriticalTransfer | None:
    """The transfer (row-locked, with `for_update`)."""
    stmt = select(CriticalTransfer).where(CriticalTransfer.id == transfer_id)
    if for_update:
        stmt = stmt.with_for_update()
    return db.scalar(stmt)


def last_case_no(db: Session, prefix: str) -> str | None:
    """The highest case number starting with `prefix`."""
    return db.scalar(select(func.max(CriticalTransfer.case_no)).where(CriticalTransfer.case_no.like(prefix + "%")))


def milestones(db: Session, transfer_id: int, kind_order: Sequence[str]) -> list[TransferMilestone]:
    """The transfer's milestones by time, then in `kind_order` (the chain's order), then as recorded."""
    order = case({k: i for i, k in enumerate(kind_order)}, value=TransferMilestone.kind)
    return list(db.scalars(select(TransferMilestone).where(TransferMilestone.transfer_id == transfer_id)
                           .order_by(TransferMilestone.at, order, TransferMilestone.id)))


def transfers_statement(institution_id: int | None, *, direction: str, open_statuses: Iterable[str] | None,
                        final: Iterable[str], lp: ListParams | None = None) -> Select[Any]:
    """Transfers of the institution (outgoing, incoming or both; only the open ones when `open_statuses` is
    given), open ones first, newest first; `lp` adds the list's search (patient name, case number), request
    dates and status."""
    where = {"outgoing": CriticalTransfer.origin_institution_id == institution_id,
             "incoming": CriticalTransfer.destination_institution_id == institution_id}.get(
        direction, or_(CriticalTransfer.origin_institution_id == institution_id,
                       CriticalTransfer.destination_institution_id == institution_id))
    stmt = select(CriticalTransfer).join(Patient, Patient.id == CriticalTransfer.patient_id).where(where)
    if open_statuses is not None:
        stmt = stmt.where(CriticalTransfer.status.in_(tuple(open_statuses)))
    if lp is not None:
        stmt = lp.apply(stmt, search=(Patient.name, CriticalTransfer.case_no), day=CriticalTransfer.created_at,
                        status=CriticalTransfer.status)
    closed_last = case((CriticalTransfer.status.in_(tuple(final)), 1), else_=0)
    return stmt.order_by(closed_last, CriticalTransfer.created_at.desc(), CriticalTransfer.id.desc())


def rows(db: Session, stmt: Select[Any], limit: int | None = None) -> list[CriticalTransfer]:
    """The transfers of a `transfers_statement`, the first `limit` of them (all with None)."""
    return list(db.scalars(stmt.limit(limit)))


def other_institutions(db: Session, institution_id: int) -> list[Institution]:
    """Every institution but this one, by name."""
    return list(db.scalars(select(Institution).where(Institution.id != institution_id).order_by(Institution.name)))


def patient_names(db: Session, ids: set[int]) -> dict[int, str]:
    """Patients' names by id (no access check: for rows the caller may already show)."""
    if not ids:
        return {}
    return {i: n for i, n in db.execute(select(Patient.id, Patient.name).where(Patient.id.in_(ids)))}


def transfers_of_patient(db: Session, patient_id: int, limit: int) -> list[CriticalTransfer]:
    """The patient's critical transfers, newest first."""
    return list(db.scalars(select(CriticalTransfer).where(CriticalTransfer.patient_id == patient_id)
                           .order_by(CriticalTransfer.created_at.desc()).limit(limit)))
