"""Queries of the FHIR layer: the platform's tables read as resources. Who may see a patient comes from
authz.policy (`readable`, `require_patient`), memberships in force from alliance.repository.current_on —
never restated here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from yilianti.alliance.repository import current_on
from yilianti.audit.repository import visible_scope
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.kit import repository as kit
from yilianti.models.alliance import Alliance, Department, Institution, Membership
from yilianti.models.audit import AuditEvent
from yilianti.models.bulk import BulkExport
from yilianti.models.consultation import Consultation, ConsultationMessage
from yilianti.models.diagnostics import DiagnosticOrder, ImagingInstance, LabObservation
from yilianti.models.diagnostics import DiagnosticReport as DxReport
from yilianti.models.diagnostics import ImagingStudy as DxImagingStudy
from yilianti.models.patient import Consent, Patient, PatientIdentifier
from yilianti.models.referral import Referral
from yilianti.models.scheduling import Booking, ClinicSession, Schedule, Slot
from yilianti.models.workforce import PracticeSite, Practitioner
from yilianti.referral.states import Status

A = TypeVar("A")
B = TypeVar("B")


def two_tables(db: Session, first: Select[Any], second: Select[Any], page: int, per_page: int
               ) -> tuple[list[Any], list[Any], int]:
    """One page over the rows of `first` followed by those of `second` (both ordered): (rows of the first on this
    page, rows of the second, total) — for a resource type mapped from two tables (Organization: institutions
    and alliances; PractitionerRole: home institutions and practice sites)."""
    n_first, n_second = kit.count(db, first), kit.count(db, second)
    offset = (page - 1) * per_page
    rows_first = list(db.scalars(first.limit(per_page).offset(offset))) if offset < n_first else []
    left = per_page - len(rows_first)
    rows_second: list[Any] = []
    if left > 0:
        rows_second = list(db.scalars(second.limit(left).offset(max(0, offset - n_first))))
    return rows_first, rows_second, n_first + n_second


# ------------------------------------------------------------------------------------------------ patients


def patients_page(db: Session, subject: Subject, where: list[ColumnElement[bool]], page: int, per_page: int, count: bool = True
                  ) -> kit.Page[Patient]:
    """Patients the subject may see (policy.readable) matching `where`, identifiers loaded, by id."""
    stmt = (select(Patient).options(selectinload(Patient.identifiers))
            .where(policy.readable(subject), Patient.active.is_(True), *where).order_by(Patient.id))
    return kit.page(db, stmt, page, per_page, count=count)


def holding_identifier(authority: str | None, values: list[str]) -> ColumnElement[bool]:
    """Patients holding one of the values (of that authority, when given); values compare by blind index."""
    stmt = select(PatientIdentifier.patient_id).where(PatientIdentifier.value.in_([v.strip().upper() for v in values]))
    if authority is not None:
        stmt = stmt.where(PatientIdentifier.authority == authority)
    return Patient.id.in_(stmt)


def with_phone(values: list[str]) -> ColumnElement[bool]:
    """Patients whose phone is one of the values (exact, by blind index)."""
    return Patient.phone.in_(values) if values else false()


def patient_loaded(db: Session, patient_id: int) -> Patient | None:
    return db.scalar(select(Patient).options(selectinload(Patient.identifiers)).where(Patient.id == patient_id))


# ------------------------------------------------------------------------------------------- organizations


def organizations_page(db: Session, institution_where: list[ColumnElement[bool]],
                       alliance_where: list[ColumnElement[bool]] | None, page: int, per_page: int
                       ) -> tuple[list[Institution], list[Alliance], int]:
    """Institutions matching, then alliances (None: no alliance matches the search), by id."""
    alliances = select(Alliance).where(*(alliance_where if alliance_where is not None else [false()]))
    return two_tables(db, select(Institution).where(*institution_where).order_by(Institution.id),
                      alliances.order_by(Alliance.id), page, per_page)


def institutions_page(db: Session, where: list[ColumnElement[bool]], page: int, per_page: int) -> kit.Page[Any]:
    return kit.page(db, select(Institution).where(*where).order_by(Institution.id), page, per_page)


def member_of(alliance_ids: list[int], today: date) -> ColumnElement[bool]:
    """Institutions that are members of one of the alliances today."""
    return Institution.id.in_(select(Membership.institution_id).where(Membership.alliance_id.in_(alliance_ids),
                                                                      current_on(today)))


def current_memberships(db: Session, institution_ids: Iterable[int], today: date) -> dict[int, list[Membership]]:
    """Each institution's memberships in force today, oldest first."""
    ids = list(set(institution_ids))
    out: dict[int, list[Membership]] = defaultdict(list)
    if ids:
        for m in db.scalars(select(Membership).where(Membership.institution_id.in_(ids), current_on(today))
                            .order_by(Membership.joined_on, Membership.id)):
            out[m.institution_id].append(m)
    return out


def memberships_page(db: Session, where: list[ColumnElement[bool]], page: int, per_page: int) -> kit.Page[Any]:
    return kit.page(db, select(Membership).where(*where).order_by(Membership.id), page, per_page)


# ------------------------------------------------------------------------------------------- practitioners


def practitioners_page(db: Session, where: list[ColumnElement[bool]], page: int, per_page: int) -> kit.Page[Any]:
    return kit.page(db, select(Practitioner).where(*where).order_by(Practitioner.id), page, per_page)


def roles_page(db: Session, home_where: list[ColumnElement[bool]], site_where: list[ColumnElement[bool]],
               page: int, per_page: int) -> tuple[list[Practitioner], list[PracticeSite], int]:
    """Home roles (practitioners) matching, then practice sites matching, by id."""
    return two_tables(db, select(Practitioner).where(*home_where).order_by(Practitioner.id),
                      select(PracticeSite).where(*site_where).order_by(PracticeSite.id), page, per_page)


def names(db: Session, model: Any, ids: Iterable[int | None]) -> dict[int, str]:
    """The `name` of each given row of `model` (Practitioner, Department)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {i: n for i, n in db.execute(select(model.id, model.name).where(model.id.in_(wanted)))}


def department_names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    return names(db, Department, ids)


def practitioner_names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    return names(db, Practitioner, ids)


# ------------------------------------------------------------------------------ scheduling (slice 3)


def schedules_page(db: Session, where: list[ColumnElement[bool]], page: int, per_page: int) -> kit.Page[Any]:
    return kit.page(db, select(Schedule).where(*where).order_by(Schedule.id), page, per_page)


def slots_page(db: Session, where: list[ColumnElement[bool]], page: int, per_page: int
               ) -> kit.Page[tuple[Slot, ClinicSession]]:
    """Slots matching `where` with their sessions (schedule and its institution loaded), by start and number."""
    stmt: Any = (select(Slot, ClinicSession).join(ClinicSession, ClinicSession.id == Slot.session_id)
            .join(Schedule, Schedule.id == ClinicSession.schedule_id).where(*where)
            .options(joinedload(ClinicSession.schedule)).order_by(ClinicSession.starts_at, Slot.session_id, Slot.seq))
    return kit.page(db, stmt, page, per_page, scalars=False)


def slot_with_session(db: Session, slot_id: int) -> tuple[Slot, ClinicSession] | None:
    row = db.execute(select(Slot, ClinicSession).join(ClinicSession, ClinicSession.id == Slot.session_id)
                     .options(joinedload(ClinicSession.schedule)).where(Slot.id == slot_id)).first()
    return (row[0], row[1]) if row else None


def appointments_page(db: Session, institution_id: int | None, where: list[ColumnElement[bool]], page: int,
                      per_page: int, count: bool = True) -> kit.Page[tuple[Booking, ClinicSession, Slot, Schedule]]:
    """Bookings the institution made or will receive (the two sides a booking shows to), by session start."""
    stmt: Any = (select(Booking, ClinicSession, Slot, Schedule).join(ClinicSession, ClinicSession.id == Booking.session_id)
            .join(Slot, Slot.id == Booking.slot_id).join(Schedule, Schedule.id == ClinicSession.schedule_id)
            .where(or_(Booking.booked_by_institution_id == institution_id, Schedule.institution_id == institution_id),
                   *where).order_by(ClinicSession.starts_at, Booking.id))
    return kit.page(db, stmt, page, per_page, scalars=False, count=count)


def appointment_parts(db: Session, booking: Booking) -> tuple[ClinicSession, Slot, Schedule]:
    row = db.execute(select(ClinicSession, Slot, Schedule).join(Schedule, Schedule.id == ClinicSession.schedule_id)
                     .join(Slot, Slot.id == booking.slot_id).where(ClinicSession.id == booking.session_id)).one()
    return row[0], row[1], row[2]


def referrals_page(db: Session, institution_id: int | None, where: list[ColumnElement[bool]], page: int,
                   per_page: int, count: bool = True) -> kit.Page[Referral]:
    """Referrals the institution sent, or receives (not the sender's drafts), as the worklists show them."""
    sides = or_(Referral.from_institution_id == institution_id,
                and_(Referral.to_institution_id == institution_id, Referral.status != Status.draft))
    return kit.page(db, select(Referral).where(sides, *where).order_by(Referral.id), page, per_page, count=count)


def identifiers_by_patient(db: Session, patient_ids: list[int]) -> dict[int, list[PatientIdentifier]]:
    out: dict[int, list[PatientIdentifier]] = defaultdict(list)
    if patient_ids:
        for row in db.scalars(select(PatientIdentifier).where(PatientIdentifier.patient_id.in_(patient_ids))
                              .order_by(PatientIdentifier.id)):
            out[row.patient_id].append(row)
    return out


def consents_page(db: Session, subject: Subject, where: list[ColumnElement[bool]], page: int, per_page: int, count: bool = True
                  ) -> kit.Page[Consent]:
    """Consents of the patients the subject may see (policy.readable), by id."""
    visible = select(Patient.id).where(policy.readable(subject))
    return kit.page(db, select(Consent).where(Consent.patient_id.in_(visible), *where).order_by(Consent.id),
                    page, per_page, count=count)


def audit_event_visible(db: Session, subject: Subject, event_id: int) -> AuditEvent | None:
    """The audit row if the subject's audit scope covers it (audit.repository.visible_scope; 403 for no scope)."""
    scope = visible_scope(db, subject)
    stmt = select(AuditEvent).where(AuditEvent.id == event_id)
    if scope is not None:
        stmt = stmt.where(AuditEvent.acting_institution_id.in_(scope))
    return db.scalar(stmt)


# ------------------------------------------------------------------------------ diagnostics (slice 4)


def reports_with_orders(db: Session, ids: list[int]) -> list[tuple[DxReport, DiagnosticOrder]]:
    if not ids:
        return []
    return [(r, o) for r, o in db.execute(select(DxReport, DiagnosticOrder).join(
        DiagnosticOrder, DiagnosticOrder.id == DxReport.order_id).where(DxReport.id.in_(ids)).order_by(DxReport.id))]


def observations_with_orders(db: Session, ids: list[int]) -> list[tuple[LabObservation, DiagnosticOrder]]:
    if not ids:
        return []
    return [(b, o) for b, o in db.execute(select(LabObservation, DiagnosticOrder).join(
        DiagnosticOrder, DiagnosticOrder.id == LabObservation.order_id).where(LabObservation.id.in_(ids))
        .order_by(LabObservation.id))]


def observation_ids_of(db: Session, order_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    if order_ids:
        for oid, obs_id in db.execute(select(LabObservation.order_id, LabObservation.id)
                                      .where(LabObservation.order_id.in_(order_ids)).order_by(LabObservation.id)):
            out[oid].append(obs_id)
    return out


def studies_of_orders(db: Session, order_ids: list[int]) -> list[tuple[DxImagingStudy, DiagnosticOrder]]:
    if not order_ids:
        return []
    return [(s, o) for s, o in db.execute(select(DxImagingStudy, DiagnosticOrder).join(
        DiagnosticOrder, DiagnosticOrder.id == DxImagingStudy.order_id).where(DxImagingStudy.order_id.in_(order_ids))
        .order_by(DxImagingStudy.id))]


def series_counts(db: Session, study_ids: list[int]) -> dict[int, int]:
    if not study_ids:
        return {}
    return {sid: n for sid, n in db.execute(
        select(ImagingInstance.study_id, func.count(func.distinct(ImagingInstance.series_instance_uid)))
        .where(ImagingInstance.study_id.in_(study_ids)).group_by(ImagingInstance.study_id))}


def consultation_ids_of_patient(db: Session, patient_id: int, limit: int = 200) -> list[int]:
    """The patient's teleconsultations, newest first (the caller checks its side of each)."""
    return list(db.scalars(select(Consultation.id).where(Consultation.patient_id == patient_id)
                           .order_by(Consultation.id.desc()).limit(limit)))


def message_with_case(db: Session, message_id: int) -> tuple[ConsultationMessage, int] | None:
    row = db.execute(select(ConsultationMessage, ConsultationMessage.consultation_id)
                     .where(ConsultationMessage.id == message_id)).first()
    return (row[0], row[1]) if row else None


def readable_patient_ids(db: Session, subject: Subject) -> list[int]:
    """The ids of every patient the subject may see, in id order: a bulk export's patients (the union of the
    policy's sources, `policy.readable_ids`, rather than testing every patient row)."""
    return sorted(set(db.scalars(policy.readable_ids(subject))))


def exports_finished_before(db: Session, before: datetime) -> list[BulkExport]:
    """Finished exports (done or failed) whose files are due for removal."""
    return list(db.scalars(select(BulkExport).where(BulkExport.status.in_(("done", "failed")),
                                                    BulkExport.finished_at < before)))


def finish_export(db: Session, export_id: int, **values: Any) -> bool:
    """The job's final write, only while the export is still queued (its job's "running" is never committed): a
    DELETE that committed while the job ran (status cancelled) is not overwritten. False when it was cancelled."""
    done = db.execute(update(BulkExport).where(BulkExport.id == export_id, BulkExport.status == "queued")
                      .values(**values).execution_options(synchronize_session="fetch"))
    return bool(done.rowcount)  # type: ignore[attr-defined]
