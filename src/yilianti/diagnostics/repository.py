"""Queries of the diagnostics domain (catalogue, orders, ECG recordings) for its pages and routes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from yilianti.diagnostics import states
from yilianti.kit import listing
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Institution
from yilianti.models.auth import RoleAssignment, User
from yilianti.models.diagnostics import (
    DiagnosticItem,
    DiagnosticOrder,
    DiagnosticOrderHistory,
    DiagnosticReport,
    ItemPrice,
    LabObservation,
)
from yilianti.models.diagnostics_media import EcgRecording
from yilianti.models.patient import Patient


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


# ------------------------------------------------------------------------------------- catalogue


def catalogue_rows(db: Session, centre_id: int | None = None,
                   active_only: bool = True) -> list[tuple[DiagnosticItem, str]]:
    """Catalogue items (of one reading centre, active only) with their centre's name, by kind and code."""
    stmt = select(DiagnosticItem, Institution.name).join(
        Institution, Institution.id == DiagnosticItem.reading_centre_institution_id)
    if centre_id is not None:
        stmt = stmt.where(DiagnosticItem.reading_centre_institution_id == centre_id)
    if active_only:
        stmt = stmt.where(DiagnosticItem.active.is_(True))
    return [(i, n) for i, n in db.execute(stmt.order_by(DiagnosticItem.kind, DiagnosticItem.code))]


def prices_at(db: Session, institution_id: int, item_ids: list[int]) -> dict[int, ItemPrice]:
    """The institution's prices of these items, by item id."""
    return {p.item_id: p for p in db.scalars(select(ItemPrice).where(
        ItemPrice.institution_id == institution_id, ItemPrice.item_id.in_(item_ids)))}


def price_of(db: Session, item_id: int, institution_id: int) -> ItemPrice | None:
    return db.scalar(select(ItemPrice).where(ItemPrice.item_id == item_id, ItemPrice.institution_id == institution_id))


def prices_of(db: Session, item_id: int) -> list[tuple[ItemPrice, str]]:
    """The item's price at each institution that has one, with its name, by name."""
    return [(p, n) for p, n in db.execute(
        select(ItemPrice, Institution.name).join(Institution, Institution.id == ItemPrice.institution_id)
        .where(ItemPrice.item_id == item_id).order_by(Institution.name)).all()]


def item_id_with_code(db: Session, centre_id: int, code: str) -> int | None:
    """The centre's catalogue item with this code."""
    return db.scalar(select(DiagnosticItem.id).where(DiagnosticItem.reading_centre_institution_id == centre_id,
                                                     DiagnosticItem.code == code))


# ------------------------------------------------------------------------------------- an order's parts


def history(db: Session, order_id: int) -> list[DiagnosticOrderHistory]:
    """The order's status changes, oldest first (no access check: `workflow.history` makes it)."""
    return list(db.scalars(select(DiagnosticOrderHistory).where(DiagnosticOrderHistory.order_id == order_id)
                           .order_by(DiagnosticOrderHistory.at, DiagnosticOrderHistory.id)))


def report_of(db: Session, order_id: int) -> DiagnosticReport | None:
    return db.scalar(select(DiagnosticReport).where(DiagnosticReport.order_id == order_id))


def observations_of(db: Session, order_id: int) -> list[LabObservation]:
    """The order's lab observations in report order."""
    return list(db.scalars(select(LabObservation).where(LabObservation.order_id == order_id)
                           .order_by(LabObservation.set_id, LabObservation.id)))


# ------------------------------------------------------------------------------------- lists


def site_orders(db: Session, institution_id: int | None, readable: ColumnElement[bool], status: str | None = None,
                limit: int = 300) -> list[tuple[DiagnosticOrder, str]]:
    """(order, patient name) of the orders the site placed (of one status), that `readable` lets the subject
    see, newest first."""
    stmt = (select(DiagnosticOrder, Patient.name).join(Patient, Patient.id == DiagnosticOrder.patient_id)
            .where(DiagnosticOrder.ordering_institution_id == institution_id, readable))
    if status:
        stmt = stmt.where(DiagnosticOrder.status == status)
    return [(o, n) for o, n in db.execute(
        stmt.order_by(DiagnosticOrder.created_at.desc(), DiagnosticOrder.id.desc()).limit(limit))]


def centre_orders(db: Session, centre_id: int | None, readable: ColumnElement[bool], *,
                  statuses: Iterable[str] | None = None, priority: str | None = None, newest_first: bool = True,
                  limit: int | None = None) -> list[tuple[DiagnosticOrder, str]]:
    """(order, patient name) of the orders the centre reads (in these statuses) that `readable` lets the
    subject see; newest first, or unordered (the caller sorts)."""
    stmt = (select(DiagnosticOrder, Patient.name).join(Patient, Patient.id == DiagnosticOrder.patient_id)
            .where(DiagnosticOrder.reading_centre_institution_id == centre_id))
    if statuses is not None:
        stmt = stmt.where(DiagnosticOrder.status.in_(set(statuses)))
    if priority:
        stmt = stmt.where(DiagnosticOrder.priority == priority)
    stmt = stmt.where(readable)
    if newest_first:
        stmt = stmt.order_by(DiagnosticOrder.created_at.desc(), DiagnosticOrder.id.desc())
    return [(o, n) for o, n in db.execute(stmt.limit(limit))]


def institution_names(db: Session) -> dict[int, str]:
    """Every institution's name by id (a small table)."""
    return {i: n for i, n in db.execute(select(Institution.id, Institution.name))}


def user_names(db: Session, ids: set[int]) -> dict[int, str]:
    """Display names of these users, by id."""
    return {i: n for i, n in db.execute(select(User.id, User.display_name).where(User.id.in_(ids)))} if ids else {}


def resulted_orders_of(db: Session, patient_id: int) -> list[DiagnosticOrder]:
    """The patient's resulted orders, the latest report first."""
    return list(db.scalars(select(DiagnosticOrder).where(
        DiagnosticOrder.patient_id == patient_id, DiagnosticOrder.status.in_(states.RESULTED))
        .order_by(DiagnosticOrder.reported_at.desc())))


def count_on_worklist(db: Session, centre_id: int) -> int:
    """Orders of the reading centre still on its worklist."""
    return db.scalar(select(func.count()).select_from(DiagnosticOrder).where(
        DiagnosticOrder.reading_centre_institution_id == centre_id,
        DiagnosticOrder.status.in_(states.WORKLIST))) or 0


def readers_at(db: Session, institution_id: int) -> list[User]:
    """Users holding the reader role at a centre, by name."""
    return list(db.scalars(select(User).join(RoleAssignment, RoleAssignment.user_id == User.id).where(
        RoleAssignment.institution_id == institution_id, RoleAssignment.role == "reader").distinct()
        .order_by(User.display_name)))


def reported_tats(db: Session, since: datetime, institution_id: int | None = None,
                  ) -> list[tuple[datetime, int, str, int | None, datetime | None, int | None]]:
    """(reported at, TAT minutes, item name, centre, due at, the item's expected TAT) of the orders reported
    since `since` (that the institution read or ordered, when given)."""
    stmt = (select(DiagnosticOrder.reported_at, DiagnosticOrder.tat_minutes, DiagnosticOrder.item_name,
                   DiagnosticOrder.reading_centre_institution_id, DiagnosticOrder.due_at, DiagnosticItem.expected_tat_minutes)
            .outerjoin(DiagnosticItem, DiagnosticItem.id == DiagnosticOrder.item_id)
            .where(DiagnosticOrder.reported_at.is_not(None), DiagnosticOrder.tat_minutes.is_not(None),
                   DiagnosticOrder.reported_at >= since))
    if institution_id is not None:
        stmt = stmt.where(or_(DiagnosticOrder.reading_centre_institution_id == institution_id,
                              DiagnosticOrder.ordering_institution_id == institution_id))
    return [tuple(r) for r in db.execute(stmt)]  # type: ignore[misc]


def orders_page(db: Session, institution_id: int | None, readable: ColumnElement[bool], lp: ListParams, *,
                centre: bool) -> kit.Page[tuple[DiagnosticOrder, str]]:
    """(order, patient name) of the orders the site placed (or the centre reads), newest first, under the list's
    search (patient name, accession number, item), order dates and status; with the total (an export: every row)."""
    column = DiagnosticOrder.reading_centre_institution_id if centre else DiagnosticOrder.ordering_institution_id
    columns: tuple[Any, ...] = (DiagnosticOrder, Patient.name)
    stmt = (select(*columns).join(Patient, Patient.id == DiagnosticOrder.patient_id)
            .where(column == institution_id, readable))
    stmt = lp.apply(stmt, search=(Patient.name, DiagnosticOrder.accession_number, DiagnosticOrder.item_name),
                    day=DiagnosticOrder.created_at, status=DiagnosticOrder.status)
    stmt = stmt.order_by(DiagnosticOrder.created_at.desc(), DiagnosticOrder.id.desc())
    if lp.export:
        rows = listing.export_rows(db, stmt, scalars=False)
        return kit.Page(rows, len(rows), 1, max(len(rows), 1))
    return kit.page(db, stmt, lp.page, lp.per_page, scalars=False)
