"""Queries of the diagnostics domain (catalogue, orders, ECG recordings) for its pages and routes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, or_, select
from sqlalchemy.orm import Session

from yilianti.diagnostics import states
from yilianti.kit import clock, listing
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Institution
from yilianti.models.auth import RoleAssignment, User
from yilianti.models.diagnostics import (
    CriticalValue,
    DiagnosticItem,
    DiagnosticOrder,
    DiagnosticOrderHistory,
    DiagnosticReport,
    ImagingInstance,
    ImagingInstanceMetadata,
    ImagingStudy,
    InboundMessage,
    ItemPrice,
    LabObservation,
)
from yilianti.models.diagnostics_media import EcgRecording, OrthancForward
from yilianti.models.patient import Patient
from yilianti.models.workforce import Practitioner


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


def worklist_statement(centre_id: int | None, readable: ColumnElement[bool], *, statuses: Iterable[str],
                       priority: str | None = None, lp: ListParams | None = None) -> Select[Any]:
    """(order, patient name) of the centre's reading worklist that `readable` lets the subject see: STAT first,
    then urgent, then the longest waiting (received, else ordered, else created: the earliest first); `lp`
    adds the list's search (patient name, accession number, item), order dates and status."""
    columns: tuple[Any, ...] = (DiagnosticOrder, Patient.name)
    stmt = (select(*columns).join(Patient, Patient.id == DiagnosticOrder.patient_id)
            .where(DiagnosticOrder.reading_centre_institution_id == centre_id,
                   DiagnosticOrder.status.in_(set(statuses)), readable))
    if priority:
        stmt = stmt.where(DiagnosticOrder.priority == priority)
    if lp is not None:
        stmt = _order_filters(stmt, lp)
    rank = case(states.PRIORITY_RANK, value=DiagnosticOrder.priority, else_=len(states.PRIORITY_RANK))
    since = func.coalesce(DiagnosticOrder.received_at, DiagnosticOrder.ordered_at, DiagnosticOrder.created_at)
    return stmt.order_by(rank, since, DiagnosticOrder.id)


def order_pairs(db: Session, stmt: Select[Any], limit: int | None = None) -> list[tuple[DiagnosticOrder, str]]:
    """The (order, patient name) rows of a `worklist_statement`, the first `limit` of them (all with None)."""
    return [(o, n) for o, n in db.execute(stmt.limit(limit))]


def worklist_page(db: Session, stmt: Select[Any], lp: ListParams) -> kit.Page[tuple[DiagnosticOrder, str]]:
    """One page of a `worklist_statement` with its total (an export: every row)."""
    return listing.page_or_export(db, stmt, lp, scalars=False)


def _order_filters(stmt: Select[Any], lp: ListParams) -> Select[Any]:
    """An order list's search (patient name, accession number, item), order dates and status."""
    return lp.apply(stmt, search=(Patient.name, DiagnosticOrder.accession_number, DiagnosticOrder.item_name),
                    day=DiagnosticOrder.created_at, status=DiagnosticOrder.status)


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
    stmt = _order_filters(stmt, lp).order_by(DiagnosticOrder.created_at.desc(), DiagnosticOrder.id.desc())
    return listing.page_or_export(db, stmt, lp, scalars=False)


# ------------------------------------------------------------------------------------- critical values


def critical_value_of_report(db: Session, report_id: int) -> int | None:
    return db.scalar(select(CriticalValue.id).where(CriticalValue.report_id == report_id))


def lock_critical_value(db: Session, cv_id: int) -> CriticalValue | None:
    return db.scalar(select(CriticalValue).where(CriticalValue.id == cv_id).with_for_update())


def department_head(db: Session, institution_id: int, *, department_id: int | None = None,
                    not_practitioner: int | None = None) -> User | None:
    """The (first) account of an active head of department at the institution (of this department), other than
    the practitioner `not_practitioner`."""
    stmt = select(User).join(Practitioner, Practitioner.id == User.practitioner_id).where(
        Practitioner.is_department_head.is_(True), Practitioner.active.is_(True),
        Practitioner.home_institution_id == institution_id)
    if not_practitioner is not None:
        stmt = stmt.where(Practitioner.id != not_practitioner)
    if department_id is not None:
        stmt = stmt.where(Practitioner.department_id == department_id)
    return db.scalar(stmt.order_by(User.id).limit(1))


def unacknowledged_critical_values(db: Session, notified_before: datetime) -> list[CriticalValue]:
    """Critical values neither acknowledged nor escalated, notified before the time; locked, skipping those
    another worker holds."""
    return list(db.scalars(select(CriticalValue).where(
        CriticalValue.acknowledged_at.is_(None), CriticalValue.escalated_at.is_(None),
        CriticalValue.notified_at <= notified_before).with_for_update(skip_locked=True)))


def critical_values_at(db: Session, institution_id: int | None, readable: ColumnElement[bool], *, open_only: bool,
                       limit: int | None) -> list[tuple[CriticalValue, DiagnosticOrder, str]]:
    """(critical value, order, patient name) of orders the institution placed or reads that `readable` lets the
    subject see (unacknowledged only, with `open_only`), newest first."""
    stmt = (select(CriticalValue, DiagnosticOrder, Patient.name)
            .join(DiagnosticOrder, DiagnosticOrder.id == CriticalValue.order_id)
            .join(Patient, Patient.id == CriticalValue.patient_id)
            .where(or_(DiagnosticOrder.ordering_institution_id == institution_id,
                       DiagnosticOrder.reading_centre_institution_id == institution_id), readable))
    if open_only:
        stmt = stmt.where(CriticalValue.acknowledged_at.is_(None))
    return [(cv, o, n) for cv, o, n in db.execute(stmt.order_by(CriticalValue.notified_at.desc()).limit(limit))]


# ------------------------------------------------------------------------------------- ECG


def latest_ecg(db: Session, order_id: int) -> EcgRecording | None:
    return db.scalar(select(EcgRecording).where(EcgRecording.order_id == order_id)
                     .order_by(EcgRecording.id.desc()).limit(1))


def instances_of_order(db: Session, order_id: int) -> list[ImagingInstance]:
    """The DICOM instances received for the order's studies, as received."""
    return list(db.scalars(select(ImagingInstance).join(ImagingStudy, ImagingStudy.id == ImagingInstance.study_id)
                           .where(ImagingStudy.order_id == order_id).order_by(ImagingInstance.id)))


def ecg_instance_ids(db: Session, order_id: int) -> set[int | None]:
    """The DICOM instances the order's ECG recordings were made from."""
    return set(db.scalars(select(EcgRecording.imaging_instance_id).where(EcgRecording.order_id == order_id)))


# ------------------------------------------------------------------------------------- receivers


def order_with_accession(db: Session, accession_number: str) -> DiagnosticOrder | None:
    return db.scalar(select(DiagnosticOrder).where(DiagnosticOrder.accession_number == accession_number))


def earlier_hl7_with_control_id(db: Session, control_id: str, other_than: int | None,
                                limit: int = 20) -> list[InboundMessage]:
    """Stored (or resolved) HL7 messages with this MSH-10, other than `other_than`, oldest first."""
    return list(db.scalars(select(InboundMessage).where(
        InboundMessage.channel == "hl7", InboundMessage.control_id == control_id,
        InboundMessage.status.in_(("stored", "resolved")),
        InboundMessage.id != (other_than or 0)).order_by(InboundMessage.id).limit(limit)))


def study_with_uid(db: Session, study_uid: str) -> ImagingStudy | None:
    return db.scalar(select(ImagingStudy).where(ImagingStudy.study_instance_uid == study_uid))


def instance_with_uid(db: Session, sop_uid: str) -> ImagingInstance | None:
    return db.scalar(select(ImagingInstance).where(ImagingInstance.sop_instance_uid == sop_uid))


def inbound_to_resolve(db: Session, statuses: Iterable[str], channel: str | None = None,
                       limit: int = 200) -> list[InboundMessage]:
    """Inbound messages in these statuses (of one channel), newest first."""
    stmt = select(InboundMessage).where(InboundMessage.status.in_(tuple(statuses)))
    if channel:
        stmt = stmt.where(InboundMessage.channel == channel)
    return list(db.scalars(stmt.order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc()).limit(limit)))


def lock_inbound(db: Session, inbound_id: int) -> InboundMessage | None:
    return db.scalar(select(InboundMessage).where(InboundMessage.id == inbound_id).with_for_update())


def open_orders_of_patient_at_centre(db: Session, patient_id: int, centre_id: int, statuses: Iterable[str],
                                     limit: int = 20) -> list[DiagnosticOrder]:
    """The patient's orders in these statuses that the centre reads, newest first."""
    return list(db.scalars(select(DiagnosticOrder).where(
        DiagnosticOrder.patient_id == patient_id, DiagnosticOrder.reading_centre_institution_id == centre_id,
        DiagnosticOrder.status.in_(tuple(statuses))).order_by(DiagnosticOrder.created_at.desc()).limit(limit)))


# ------------------------------------------------------------------------------------- imaging


def studies_of_order(db: Session, order_id: int) -> list[ImagingStudy]:
    """The order's studies as received."""
    return list(db.scalars(select(ImagingStudy).where(ImagingStudy.order_id == order_id)
                           .order_by(ImagingStudy.received_at, ImagingStudy.id)))


def instances_of_study(db: Session, study_id: int) -> list[ImagingInstance]:
    return list(db.scalars(select(ImagingInstance).where(ImagingInstance.study_id == study_id)))


def orthanc_study_of(db: Session, study_id: int) -> str | None:
    """Orthanc's id of the study, once one of its instances was forwarded."""
    return db.scalar(
        select(OrthancForward.orthanc_study_id).join(ImagingInstance, ImagingInstance.id == OrthancForward.instance_id)
        .where(ImagingInstance.study_id == study_id, OrthancForward.status == "sent").limit(1))


def instances_to_forward(db: Session, max_attempts: int, limit: int) -> list[ImagingInstance]:
    """Instances neither sent to Orthanc nor given up on (after `max_attempts`), oldest first."""
    done = select(OrthancForward.instance_id).where(
        (OrthancForward.status == "sent") | (OrthancForward.attempts >= max_attempts))
    return list(db.scalars(select(ImagingInstance).where(ImagingInstance.id.not_in(done))
                           .order_by(ImagingInstance.id).limit(limit)))


def forward_mark(db: Session, instance_id: int) -> OrthancForward | None:
    return db.scalar(select(OrthancForward).where(OrthancForward.instance_id == instance_id))


# ------------------------------------------------------------------------------------- the shared record


def orders_of_patient(db: Session, patient_id: int, limit: int) -> list[DiagnosticOrder]:
    """The patient's orders, newest first."""
    return list(db.scalars(select(DiagnosticOrder).where(DiagnosticOrder.patient_id == patient_id)
                           .order_by(DiagnosticOrder.created_at.desc()).limit(limit)))


def observations_of_patient(db: Session, patient_id: int, limit: int) -> list[tuple[LabObservation, DiagnosticOrder]]:
    """(observation, its order) of the patient's lab results, newest first."""
    o, obs = DiagnosticOrder, LabObservation
    return [(ob, order) for ob, order in db.execute(
        select(obs, o).join(o, o.id == obs.order_id).where(o.patient_id == patient_id)
        .order_by(obs.created_at.desc()).limit(limit))]


def signed_reports_of_patient(db: Session, patient_id: int, limit: int) -> list[tuple[DiagnosticReport, DiagnosticOrder]]:
    """(report, its order) of the patient's signed reports, newest first."""
    o, report = DiagnosticOrder, DiagnosticReport
    return [(rp, order) for rp, order in db.execute(
        select(report, o).join(o, o.id == report.order_id)
        .where(o.patient_id == patient_id, report.status.in_(sorted(states.SIGNED)))
        .order_by(report.created_at.desc()).limit(limit))]


# ------------------------------------------------------------------------------------- DICOMweb
# `visible` is orders/workflow.visible(subject): the order page's rule as a clause over DiagnosticOrder and Patient.


def studies_matching(db: Session, visible: ColumnElement[bool], *, study_uids: list[str] | None = None,
                     patient_identifier: str | None = None, patient_name: str | None = None,
                     accession: str | None = None, modalities: list[str] | None = None,
                     date_from: date | None = None, date_to: date | None = None, description: str | None = None,
                     limit: int = 100, offset: int = 0) -> list[tuple[ImagingStudy, DiagnosticOrder, Patient]]:
    """(study, its order, the order's patient) of the studies the subject may see under QIDO-RS's matching keys,
    newest first. `patient_name` (the platform's name, as the order page shows it) and `description` match a
    part."""
    stmt = (select(ImagingStudy, DiagnosticOrder, Patient).join(DiagnosticOrder, DiagnosticOrder.id == ImagingStudy.order_id)
            .join(Patient, Patient.id == DiagnosticOrder.patient_id).where(visible))
    if study_uids:
        stmt = stmt.where(ImagingStudy.study_instance_uid.in_(study_uids))
    if patient_identifier:
        stmt = stmt.where(ImagingStudy.patient_identifier == patient_identifier)
    if patient_name:
        stmt = stmt.where(Patient.name.contains(patient_name, autoescape=True))
    if accession:
        stmt = stmt.where(ImagingStudy.accession_number == accession)
    if modalities:
        stmt = stmt.where(ImagingStudy.modality.in_(modalities))
    if description:
        stmt = stmt.where(ImagingStudy.description.contains(description, autoescape=True))
    if date_from:
        stmt = stmt.where(ImagingStudy.study_date >= date_from)
    if date_to:
        stmt = stmt.where(ImagingStudy.study_date <= date_to)
    stmt = stmt.order_by(ImagingStudy.study_date.desc(), ImagingStudy.id.desc()).limit(limit).offset(offset)
    return [(s, o, p) for s, o, p in db.execute(stmt)]


def series_counts(db: Session, study_ids: Iterable[int]) -> dict[int, int]:
    """How many series each study has (distinct SeriesInstanceUID of its instances)."""
    ids = list(study_ids)
    if not ids:
        return {}
    return {sid: n for sid, n in db.execute(
        select(ImagingInstance.study_id, func.count(func.distinct(ImagingInstance.series_instance_uid)))
        .where(ImagingInstance.study_id.in_(ids)).group_by(ImagingInstance.study_id))}


def visible_study(db: Session, visible: ColumnElement[bool], study_uid: str,
                  ) -> tuple[ImagingStudy, DiagnosticOrder, Patient] | None:
    """The study with this UID, its order and patient, when the subject may see the order."""
    row = db.execute(select(ImagingStudy, DiagnosticOrder, Patient)
                     .join(DiagnosticOrder, DiagnosticOrder.id == ImagingStudy.order_id)
                     .join(Patient, Patient.id == DiagnosticOrder.patient_id)
                     .where(ImagingStudy.study_instance_uid == study_uid, visible)).first()
    return (row[0], row[1], row[2]) if row else None


def order_is_visible(db: Session, visible: ColumnElement[bool], order_id: int) -> bool:
    """Whether the subject may open the order."""
    return db.scalar(select(DiagnosticOrder.id).join(Patient, Patient.id == DiagnosticOrder.patient_id)
                     .where(DiagnosticOrder.id == order_id, visible)) is not None


# ------------------------------------------------------------------------------------- WADO-RS metadata


def metadata_documents(db: Session, instance_ids: Iterable[int]) -> dict[int, str]:
    """The stored metadata documents of these instances (those made)."""
    ids = list(instance_ids)
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        rows = db.execute(select(ImagingInstanceMetadata.instance_id, ImagingInstanceMetadata.document)
                          .where(ImagingInstanceMetadata.instance_id.in_(ids[start:start + 500])))
        out.update((instance_id, text) for instance_id, text in rows)
    return out


def save_metadata_document(db: Session, instance_id: int, document: str) -> None:
    """Keep (or replace: a resent instance) the instance's metadata document."""
    row = db.get(ImagingInstanceMetadata, instance_id)
    if row is None:
        db.add(ImagingInstanceMetadata(instance_id=instance_id, document=document))
    else:
        row.document, row.made_at = document, clock.now()


def instances_without_metadata(db: Session, after_id: int, limit: int) -> list[ImagingInstance]:
    """Instances whose metadata document was never made, by id (the backfill's batches)."""
    made = select(ImagingInstanceMetadata.instance_id)
    return list(db.scalars(select(ImagingInstance).where(ImagingInstance.id > after_id,
                                                         ImagingInstance.id.not_in(made))
                           .order_by(ImagingInstance.id).limit(limit)))
