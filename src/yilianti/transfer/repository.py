"""Queries of critical transfers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, case, or_, select
from sqlalchemy.orm import Session

from yilianti.kit.listing import ListParams
from yilianti.models.patient import Patient
from yilianti.models.transfer import CriticalTransfer


def transfers_of_referral(db: Session, referral_id: int) -> list[CriticalTransfer]:
    """Critical transfers started from one referral, oldest first."""
    return list(db.scalars(select(CriticalTransfer).where(CriticalTransfer.referral_id == referral_id)
                           .order_by(CriticalTransfer.id)))


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
