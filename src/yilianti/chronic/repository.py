"""Queries of chronic care: teams, members, contracts, registrations and follow-ups."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from yilianti.authz.policy import readable
from yilianti.authz.subject import Subject
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Institution
from yilianti.models.auth import User
from yilianti.models.chronic import (
    ChronicAlarm,
    ChronicCall,
    ChronicFollowUp,
    ChronicReading,
    ChronicRegistration,
    ChronicReminder,
    FamilyDoctorContract,
    FamilyDoctorTeam,
    TeamMember,
)
from yilianti.models.diagnostics import DiagnosticOrder, LabObservation
from yilianti.models.patient import Patient
from yilianti.models.scheduling import BedReservation


def teams_of(db: Session, institution_id: int) -> list[FamilyDoctorTeam]:
    return list(db.scalars(select(FamilyDoctorTeam).where(FamilyDoctorTeam.institution_id == institution_id)
                           .order_by(FamilyDoctorTeam.name, FamilyDoctorTeam.id)))


def members_of(db: Session, team_id: int) -> list[tuple[TeamMember, str]]:
    """The members with their display names."""
    return [(m, name) for m, name in db.execute(
        select(TeamMember, User.display_name).join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id == team_id).order_by(TeamMember.id))]


def active_contract(db: Session, patient_id: int, team_id: int, on: date) -> FamilyDoctorContract | None:
    return db.scalar(select(FamilyDoctorContract).where(
        FamilyDoctorContract.patient_id == patient_id, FamilyDoctorContract.team_id == team_id,
        FamilyDoctorContract.status == "active", FamilyDoctorContract.end_on >= on).limit(1))


def contracts_of_team(db: Session, team_id: int) -> list[FamilyDoctorContract]:
    return list(db.scalars(select(FamilyDoctorContract).where(FamilyDoctorContract.team_id == team_id)
                           .order_by(FamilyDoctorContract.start_on.desc(), FamilyDoctorContract.id.desc())))


def registration_under_care(db: Session, patient_id: int, condition: str) -> ChronicRegistration | None:
    return db.scalar(select(ChronicRegistration).where(
        ChronicRegistration.patient_id == patient_id, ChronicRegistration.condition == condition,
        ChronicRegistration.status == "under_care").limit(1))


def last_done(db: Session, registration_id: int) -> ChronicFollowUp | None:
    """The registration's latest recorded follow-up."""
    return db.scalar(select(ChronicFollowUp).where(ChronicFollowUp.registration_id == registration_id,
                                                   ChronicFollowUp.status == "done")
                     .order_by(ChronicFollowUp.done_on.desc(), ChronicFollowUp.id.desc()).limit(1))


def open_follow_ups(db: Session, subject: Subject, team_id: int, until: date,
                    ) -> list[tuple[ChronicFollowUp, ChronicRegistration, Patient]]:
    """The team's open follow-ups due on or before `until`, of patients the subject may see, oldest first."""
    return [(f, r, p) for f, r, p in db.execute(
        select(ChronicFollowUp, ChronicRegistration, Patient)
        .join(ChronicRegistration, ChronicRegistration.id == ChronicFollowUp.registration_id)
        .join(Patient, Patient.id == ChronicFollowUp.patient_id)
        .where(or_(ChronicFollowUp.team_id == team_id,  # and the institution's follow-ups no team holds yet
                   and_(ChronicFollowUp.team_id.is_(None), ChronicFollowUp.institution_id == select(
                       FamilyDoctorTeam.institution_id).where(FamilyDoctorTeam.id == team_id).scalar_subquery())),
               ChronicFollowUp.status == "open", ChronicFollowUp.due_on <= until, readable(subject))
        .order_by(ChronicFollowUp.due_on, ChronicFollowUp.id))]


def history(db: Session, registration_id: int) -> list[ChronicFollowUp]:
    return list(db.scalars(select(ChronicFollowUp).where(ChronicFollowUp.registration_id == registration_id)
                           .order_by(ChronicFollowUp.due_on.desc(), ChronicFollowUp.id.desc())))


def patient_of(db: Session, patient_id: int) -> Patient | None:
    return db.get(Patient, patient_id)


def open_follow_up(db: Session, registration_id: int) -> ChronicFollowUp | None:
    return db.scalar(select(ChronicFollowUp).where(ChronicFollowUp.registration_id == registration_id,
                                                   ChronicFollowUp.status == "open").limit(1))


def contract_team(db: Session, patient_id: int, institution_id: int, on: date) -> int | None:
    """The team of the patient's contract in force at the institution, if any."""
    return db.scalar(select(FamilyDoctorContract.team_id).join(
        FamilyDoctorTeam, FamilyDoctorTeam.id == FamilyDoctorContract.team_id).where(
        FamilyDoctorContract.patient_id == patient_id, FamilyDoctorTeam.institution_id == institution_id,
        FamilyDoctorContract.status == "active", FamilyDoctorContract.start_on <= on,
        FamilyDoctorContract.end_on >= on).limit(1))


def count_due(db: Session, subject: Subject, until: date) -> int:
    """Open follow-ups of the acting institution due on or before `until`, of patients the subject may see."""
    return db.scalar(select(func.count()).select_from(ChronicFollowUp).join(
        Patient, Patient.id == ChronicFollowUp.patient_id).where(
        ChronicFollowUp.institution_id == subject.acting_institution_id, ChronicFollowUp.status == "open",
        ChronicFollowUp.due_on <= until, readable(subject))) or 0


# ------------------------------------------------------------------ overdue list, reminders, calls (issue 20 §5)


def overdue_statement(subject: Subject, today: date, lp: ListParams, *, team_id: int | None = None,
                      doctor_id: int | None = None, village: str | None = None) -> Select[Any]:
    """The acting institution's open follow-ups due before `today` (逾期未随访) of patients the subject may
    see, narrowed by team, responsible doctor, village (the team's), the list kit's search (patient name),
    due-date range and status (the condition); most overdue first."""
    columns: tuple[Any, ...] = (ChronicFollowUp, ChronicRegistration, Patient)
    stmt = (select(*columns)
            .join(ChronicRegistration, ChronicRegistration.id == ChronicFollowUp.registration_id)
            .join(Patient, Patient.id == ChronicFollowUp.patient_id)
            .outerjoin(FamilyDoctorTeam, FamilyDoctorTeam.id == ChronicFollowUp.team_id)
            .where(ChronicFollowUp.institution_id == subject.acting_institution_id,
                   ChronicFollowUp.status == "open", ChronicFollowUp.due_on < today, readable(subject)))
    if team_id is not None:
        stmt = stmt.where(ChronicFollowUp.team_id == team_id)
    if doctor_id is not None:
        stmt = stmt.where(ChronicRegistration.responsible_user_id == doctor_id)
    if village:
        stmt = stmt.where(FamilyDoctorTeam.village == village)
    stmt = lp.apply(stmt, search=(Patient.name,), day=ChronicFollowUp.due_on, status=ChronicRegistration.condition)
    return stmt.order_by(ChronicFollowUp.due_on, ChronicFollowUp.id)


def doctors_of(db: Session, institution_id: int) -> list[tuple[int, str]]:
    """The users responsible for a registration of the institution, with their names (the doctor filter)."""
    return [(uid, name) for uid, name in db.execute(
        select(User.id, User.display_name).where(User.id.in_(
            select(ChronicRegistration.responsible_user_id).where(
                ChronicRegistration.institution_id == institution_id)))
        .order_by(User.display_name, User.id))]


def reminders_of(db: Session, follow_up_ids: list[int]) -> dict[int, list[ChronicReminder]]:
    out: dict[int, list[ChronicReminder]] = {}
    for r in db.scalars(select(ChronicReminder).where(ChronicReminder.follow_up_id.in_(follow_up_ids))
                        .order_by(ChronicReminder.created_at, ChronicReminder.id)):
        out.setdefault(r.follow_up_id, []).append(r)
    return out


def calls_of(db: Session, follow_up_ids: list[int]) -> dict[int, list[ChronicCall]]:
    out: dict[int, list[ChronicCall]] = {}
    for c in db.scalars(select(ChronicCall).where(ChronicCall.follow_up_id.in_(follow_up_ids))
                        .order_by(ChronicCall.called_at, ChronicCall.id)):
        out.setdefault(c.follow_up_id, []).append(c)
    return out


def to_remind(db: Session, first: date, last: date, channel: str, limit: int = 1000,
              ) -> list[tuple[ChronicFollowUp, ChronicRegistration, Patient]]:
    """Open follow-ups due in [first, last] without a reminder on `channel` for their current due date."""
    sent = exists().where(ChronicReminder.follow_up_id == ChronicFollowUp.id,
                          ChronicReminder.due_on == ChronicFollowUp.due_on, ChronicReminder.channel == channel)
    return [(f, r, p) for f, r, p in db.execute(
        select(ChronicFollowUp, ChronicRegistration, Patient)
        .join(ChronicRegistration, ChronicRegistration.id == ChronicFollowUp.registration_id)
        .join(Patient, Patient.id == ChronicFollowUp.patient_id)
        .where(ChronicFollowUp.status == "open", ChronicFollowUp.due_on >= first, ChronicFollowUp.due_on <= last,
               ChronicRegistration.status == "under_care", ~sent)
        .order_by(ChronicFollowUp.due_on, ChronicFollowUp.id).limit(limit))]


def reminder(db: Session, reminder_id: int) -> ChronicReminder | None:
    return db.get(ChronicReminder, reminder_id)


def institution_name(db: Session, institution_id: int) -> str:
    return db.scalar(select(Institution.name).where(Institution.id == institution_id)) or ""


def reminders_statement(subject: Subject, lp: ListParams) -> Select[Any]:
    """The acting institution's reminder outbox (patients the subject may see), newest first."""
    columns: tuple[Any, ...] = (ChronicReminder, Patient)
    stmt = (select(*columns).join(Patient, Patient.id == ChronicReminder.patient_id)
            .where(ChronicReminder.institution_id == subject.acting_institution_id, readable(subject)))
    stmt = lp.apply(stmt, search=(Patient.name,), day=ChronicReminder.due_on, status=ChronicReminder.status)
    return stmt.order_by(ChronicReminder.created_at.desc(), ChronicReminder.id.desc())


# ------------------------------------------------------------------ alarms (issue 20 §6)


def alarm_keys(db: Session, keys: list[str]) -> set[str]:
    return set(db.scalars(select(ChronicAlarm.source_key).where(ChronicAlarm.source_key.in_(keys))))


def alarm_for(db: Session, source_key: str) -> ChronicAlarm | None:
    return db.scalar(select(ChronicAlarm).where(ChronicAlarm.source_key == source_key))


def alarm(db: Session, alarm_id: int) -> ChronicAlarm | None:
    return db.get(ChronicAlarm, alarm_id)


def alarms_statement(subject: Subject, lp: ListParams) -> Select[Any]:
    """The acting institution's alarms of patients the subject may see: open first, newest first; the list
    kit's status is `open` (unacknowledged) or `acknowledged`."""
    columns: tuple[Any, ...] = (ChronicAlarm, Patient)
    stmt = (select(*columns).join(Patient, Patient.id == ChronicAlarm.patient_id)
            .where(ChronicAlarm.institution_id == subject.acting_institution_id, readable(subject)))
    if lp.status == "open":
        stmt = stmt.where(ChronicAlarm.acknowledged_at.is_(None))
    elif lp.status == "acknowledged":
        stmt = stmt.where(ChronicAlarm.acknowledged_at.is_not(None))
    stmt = replace(lp, status="").apply(stmt, search=(Patient.name, ChronicAlarm.value_text),
                                        day=ChronicAlarm.measured_at)
    return stmt.order_by(ChronicAlarm.acknowledged_at.is_not(None), ChronicAlarm.measured_at.desc(),
                         ChronicAlarm.id.desc())


def unacknowledged_alarms(db: Session, before: datetime) -> list[ChronicAlarm]:
    return list(db.scalars(select(ChronicAlarm).where(
        ChronicAlarm.acknowledged_at.is_(None), ChronicAlarm.escalated_at.is_(None),
        ChronicAlarm.created_at < before).order_by(ChronicAlarm.id).limit(500)))


def glucose_results_since(db: Session, since: datetime, codes: tuple[str, ...], limit: int = 2000,
                          ) -> list[tuple[LabObservation, ChronicRegistration]]:
    """Lab observations stored since `since` with a glucose code, of patients in the diabetes registry
    (under care), with that registration."""
    return [(o, r) for o, r in db.execute(
        select(LabObservation, ChronicRegistration)
        .join(DiagnosticOrder, DiagnosticOrder.id == LabObservation.order_id)
        .join(ChronicRegistration, ChronicRegistration.patient_id == DiagnosticOrder.patient_id)
        .where(LabObservation.created_at >= since, func.upper(LabObservation.code).in_(codes),
               ChronicRegistration.condition == "diabetes_t2", ChronicRegistration.status == "under_care")
        .order_by(LabObservation.id).limit(limit))]


def order_patient(db: Session, order_id: int) -> int | None:
    return db.scalar(select(DiagnosticOrder.patient_id).where(DiagnosticOrder.id == order_id))


def registration(db: Session, registration_id: int) -> ChronicRegistration | None:
    return db.get(ChronicRegistration, registration_id)


# ------------------------------------------------------------------ outcomes (issue 20 §7)


MEASURED = ("hypertension", "diabetes_t2")  # the registries with BP / glucose targets


def registrations_managed(db: Session, institutions: list[int], end: date,
                          ) -> list[tuple[int, int, int, int | None, str, date]]:
    """Hypertension and diabetes registrations under care at the institutions, enrolled on or before `end`:
    (id, patient, institution, team, condition, enrolled on)."""
    return [tuple(r) for r in db.execute(  # type: ignore[misc]
        select(ChronicRegistration.id, ChronicRegistration.patient_id, ChronicRegistration.institution_id,
               ChronicRegistration.team_id, ChronicRegistration.condition, ChronicRegistration.enrolled_on)
        .where(ChronicRegistration.institution_id.in_(institutions), ChronicRegistration.enrolled_on <= end,
               ChronicRegistration.condition.in_(MEASURED), ChronicRegistration.status == "under_care")
        .order_by(ChronicRegistration.id))]


def visits_between(db: Session, institutions: list[int], start: date, end: date,
                   ) -> list[tuple[int, date, int | None, int | None, float | None]]:
    """Recorded follow-ups done in [start, end] at the institutions: (registration, day, SBP, DBP, glucose),
    in visit order."""
    return [tuple(r) for r in db.execute(  # type: ignore[misc]
        select(ChronicFollowUp.registration_id, ChronicFollowUp.done_on, ChronicFollowUp.sbp, ChronicFollowUp.dbp,
               ChronicFollowUp.fasting_glucose)
        .where(ChronicFollowUp.institution_id.in_(institutions), ChronicFollowUp.status == "done",
               ChronicFollowUp.done_on >= start, ChronicFollowUp.done_on <= end)
        .order_by(ChronicFollowUp.done_on, ChronicFollowUp.id))]


def admissions_between(db: Session, patient_ids: list[int], start: datetime, end: datetime,
                       ) -> list[tuple[int, int, datetime]]:
    """Admissions of the patients (bed reservations that ended in an admission) made in [start, end):
    (reservation id, patient, reserved at)."""
    if not patient_ids:
        return []
    return [tuple(r) for r in db.execute(  # type: ignore[misc]
        select(BedReservation.id, BedReservation.patient_id, BedReservation.created_at)
        .where(BedReservation.patient_id.in_(patient_ids), BedReservation.status == "admitted",
               BedReservation.created_at >= start, BedReservation.created_at < end))]


# ------------------------------------------------------------------ device readings


def registrations_under_care_at(db: Session, patient_id: int, institution_id: int) -> list[ChronicRegistration]:
    return list(db.scalars(select(ChronicRegistration).where(
        ChronicRegistration.patient_id == patient_id, ChronicRegistration.institution_id == institution_id,
        ChronicRegistration.status == "under_care").order_by(ChronicRegistration.id)))


def reading_exists(db: Session, patient_id: int, kind: str, at: datetime) -> bool:
    return db.scalar(select(ChronicReading.id).where(
        ChronicReading.patient_id == patient_id, ChronicReading.kind == kind,
        ChronicReading.measured_at == at).limit(1)) is not None


def readings_statement(subject: Subject, lp: ListParams) -> Select[Any]:
    """The acting institution's device readings of patients the subject may see, newest first."""
    columns: tuple[Any, ...] = (ChronicReading, Patient)
    stmt = (select(*columns).join(Patient, Patient.id == ChronicReading.patient_id)
            .where(ChronicReading.institution_id == subject.acting_institution_id, readable(subject)))
    stmt = lp.apply(stmt, search=(Patient.name, ChronicReading.device), day=ChronicReading.measured_at,
                    status=ChronicReading.kind)
    return stmt.order_by(ChronicReading.measured_at.desc(), ChronicReading.id.desc())


def readings_of(db: Session, patient_id: int, limit: int = 500) -> list[ChronicReading]:
    """The patient's latest device readings, oldest first."""
    rows = list(db.scalars(select(ChronicReading).where(ChronicReading.patient_id == patient_id)
                           .order_by(ChronicReading.measured_at.desc()).limit(limit)))
    return rows[::-1]
