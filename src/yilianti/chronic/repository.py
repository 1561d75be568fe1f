"""Queries of chronic care: teams, members, contracts, registrations and follow-ups."""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from yilianti.authz.policy import readable
from yilianti.authz.subject import Subject
from yilianti.models.auth import User
from yilianti.models.chronic import (
    ChronicFollowUp,
    ChronicRegistration,
    FamilyDoctorContract,
    FamilyDoctorTeam,
    TeamMember,
)
from yilianti.models.patient import Patient


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
