"""Queries of chronic care: teams, members, contracts, registrations and follow-ups."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, delete, exists, func, insert, or_, select
from sqlalchemy.orm import Session, aliased

from yilianti.authz.policy import readable, readable_ids
from yilianti.authz.subject import Subject
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Institution
from yilianti.models.auth import Role, RoleAssignment, User
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
from yilianti.models.chronic_registry import (
    ChronicOutcomeMonth,
    ChronicRegistrationEvent,
    ScreeningRecord,
    ScreeningRound,
    TbClosing,
)
from yilianti.models.diagnostics import DiagnosticOrder, LabObservation
from yilianti.models.encounter import Encounter, EncounterKind
from yilianti.models.patient import CareRelationship, Patient
from yilianti.models.referral import Direction, Referral
from yilianti.models.scheduling import BedReservation
from yilianti.referral.states import Status
from yilianti.scheduling.rules import shares_alliance


def teams_of(db: Session, institution_id: int) -> list[FamilyDoctorTeam]:
    return list(db.scalars(select(FamilyDoctorTeam).where(FamilyDoctorTeam.institution_id == institution_id)
                           .order_by(FamilyDoctorTeam.name, FamilyDoctorTeam.id)))


def team_head(db: Session, team_id: int) -> int | None:
    """The user who leads the team (团队长), if it has one."""
    return db.scalar(select(TeamMember.user_id).where(TeamMember.team_id == team_id, TeamMember.is_lead.is_(True))
                     .limit(1))


def team_heads(db: Session, team_ids: Iterable[int]) -> dict[int, int]:
    """The head (团队长) of each of the teams that has one."""
    ids = sorted(set(team_ids))
    if not ids:
        return {}
    return {tid: uid for tid, uid in db.execute(select(TeamMember.team_id, TeamMember.user_id).where(
        TeamMember.team_id.in_(ids), TeamMember.is_lead.is_(True)).order_by(TeamMember.id.desc()))}


def patient_names(db: Session, patient_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(patient_ids))
    if not ids:
        return {}
    return {pid: name for pid, name in db.execute(select(Patient.id, Patient.name).where(Patient.id.in_(ids)))}


def user_names(db: Session, user_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    return {uid: name for uid, name in db.execute(select(User.id, User.display_name).where(User.id.in_(ids)))}


def members_of(db: Session, team_id: int) -> list[tuple[TeamMember, str]]:
    """The members with their display names."""
    return [(m, name) for m, name in db.execute(
        select(TeamMember, User.display_name).join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id == team_id).order_by(TeamMember.id))]


# ------------------------------------------------------------------ teams, contracts, signing rates (teams.py)

def member_candidates(db: Session, institution_id: int, on: date) -> list[tuple[int, str, str, str]]:
    """Who may join a team of the institution: its doctors and nurses, and the doctors of institutions sharing
    an alliance with it in force (the lead hospital's specialist) — (user id, name, role, institution name)."""
    rows = db.execute(
        select(User.id, User.display_name, RoleAssignment.role, Institution.name)
        .join(RoleAssignment, RoleAssignment.user_id == User.id)
        .join(Institution, Institution.id == RoleAssignment.institution_id)
        .where(User.active.is_(True), or_(
            and_(RoleAssignment.institution_id == institution_id,
                 RoleAssignment.role.in_((Role.doctor, Role.nurse))),
            and_(RoleAssignment.institution_id != institution_id, RoleAssignment.role == Role.doctor,
                 shares_alliance(RoleAssignment.institution_id, institution_id, on))))
        .order_by(RoleAssignment.institution_id != institution_id, Institution.name, User.display_name)
        .limit(500))
    seen: dict[int, tuple[int, str, str, str]] = {}
    for uid, name, role, inst in rows:
        seen.setdefault(uid, (uid, name, str(role), inst))
    return list(seen.values())


def member(db: Session, member_id: int) -> TeamMember | None:
    return db.get(TeamMember, member_id)


def member_of(db: Session, team_id: int, user_id: int) -> TeamMember | None:
    return db.scalar(select(TeamMember).where(TeamMember.team_id == team_id, TeamMember.user_id == user_id))


def user_named(db: Session, user_id: int) -> User | None:
    return db.get(User, user_id)


def contract(db: Session, contract_id: int) -> FamilyDoctorContract | None:
    return db.get(FamilyDoctorContract, contract_id)


def renewal_of(db: Session, contract_id: int) -> FamilyDoctorContract | None:
    """The contract that renews `contract_id`, unless it was terminated."""
    return db.scalar(select(FamilyDoctorContract).where(FamilyDoctorContract.renewal_of_id == contract_id,
                                                        FamilyDoctorContract.status == "active").limit(1))


def care_of_contract(db: Session, contract_id: int) -> CareRelationship | None:
    return db.scalar(select(CareRelationship).where(CareRelationship.source_type == "family_doctor_contract",
                                                    CareRelationship.source_id == contract_id,
                                                    CareRelationship.ended_at.is_(None)).limit(1))


def contract_rows(subject: Subject, team_id: int, state: str = "", on: date | None = None,
                  soon: date | None = None) -> Select[Any]:
    """The team's contracts with their residents the subject may see, newest first (for the list kit); `state`
    keeps those in that state on `on` (`contract_state`)."""
    columns: tuple[Any, ...] = (FamilyDoctorContract, Patient)
    stmt = (select(*columns).join(Patient, Patient.id == FamilyDoctorContract.patient_id)
            .where(FamilyDoctorContract.team_id == team_id, readable(subject))
            .order_by(FamilyDoctorContract.start_on.desc(), FamilyDoctorContract.id.desc()))
    if state and on is not None and soon is not None:
        stmt = stmt.where(contract_state(on, soon) == state)
    return stmt


def contract_state(on: date, soon: date) -> Any:
    """A contract's state on `on` as SQL: terminated | expired | expiring (ends by `soon`) | active."""
    c = FamilyDoctorContract
    return case((c.status == "terminated", "terminated"), (c.end_on < on, "expired"),
                (c.start_on > on, "pending"), (c.end_on <= soon, "expiring"), else_="active")


def residents(db: Session, institution_id: int) -> list[tuple[int, date | None, str | None]]:
    """The institution's residents: registered there or in its care now (id, birth date, address)."""
    in_care = select(CareRelationship.patient_id).where(CareRelationship.institution_id == institution_id,
                                                        CareRelationship.ended_at.is_(None))
    return [(pid, birth, address) for pid, birth, address in db.execute(
        select(Patient.id, Patient.birth_date, Patient.address).where(
            Patient.active.is_(True),
            or_(Patient.registered_by_institution_id == institution_id, Patient.id.in_(in_care))))]


def addresses(db: Session, patient_ids: set[int]) -> dict[int, str]:
    """The patients' addresses (the village a figure is counted in is read from them, chronic/teams.village_of)."""
    return {pid: address or "" for pid, address in db.execute(
        select(Patient.id, Patient.address).where(Patient.id.in_(sorted(patient_ids))))} if patient_ids else {}


def in_force(on: Any) -> list[ColumnElement[bool]]:
    """A family-doctor contract in force on `on` (a date, or a hot path's placeholder): signed, started, not
    ended and not terminated."""
    return [FamilyDoctorContract.status == "active", FamilyDoctorContract.start_on <= on,
            FamilyDoctorContract.end_on >= on]


def contracts_in_force(db: Session, institution_id: int, on: date) -> list[tuple[int, int]]:
    """(patient id, team id) of every contract in force on `on` with a team of the institution."""
    return [(pid, tid) for pid, tid in db.execute(
        select(FamilyDoctorContract.patient_id, FamilyDoctorContract.team_id)
        .join(FamilyDoctorTeam, FamilyDoctorTeam.id == FamilyDoctorContract.team_id)
        .where(FamilyDoctorTeam.institution_id == institution_id, *in_force(on)))]


def registered_conditions(db: Session, institution_id: int) -> list[tuple[int, str, int | None]]:
    """(patient id, condition, team id) of the institution's registrations under care."""
    return [(pid, cond, tid) for pid, cond, tid in db.execute(
        select(ChronicRegistration.patient_id, ChronicRegistration.condition, ChronicRegistration.team_id)
        .where(ChronicRegistration.institution_id == institution_id,
               ChronicRegistration.status == "under_care"))]


# ------------------------------------------------------------------------------- the registries (registry.py)

def registration_rows(subject: Subject, institution_id: int, *, condition: str = "", risk: str = "",
                      team_id: int | None = None, status: str = "") -> Select[Any]:
    """The institution's registrations with their patients the subject may see, newest first."""
    columns: tuple[Any, ...] = (ChronicRegistration, Patient)
    stmt = (select(*columns).join(Patient, Patient.id == ChronicRegistration.patient_id)
            .where(ChronicRegistration.institution_id == institution_id, readable(subject))
            .order_by(ChronicRegistration.enrolled_on.desc(), ChronicRegistration.id.desc()))
    if condition:
        stmt = stmt.where(ChronicRegistration.condition == condition)
    if risk:
        stmt = stmt.where(ChronicRegistration.risk_level == risk)
    if team_id is not None:
        stmt = stmt.where(ChronicRegistration.team_id == team_id)
    if status:
        stmt = stmt.where(ChronicRegistration.status == status)
    return stmt


def registration_events(db: Session, registration_id: int) -> list[tuple[ChronicRegistrationEvent, str | None]]:
    """A registration's history, newest first, with who made each change."""
    return [(e, name) for e, name in db.execute(
        select(ChronicRegistrationEvent, User.display_name).outerjoin(User, User.id == ChronicRegistrationEvent.user_id)
        .where(ChronicRegistrationEvent.registration_id == registration_id)
        .order_by(ChronicRegistrationEvent.effective_on.desc(), ChronicRegistrationEvent.id.desc()))]


def tb_closing(db: Session, registration_id: int) -> tuple[TbClosing, str | None] | None:
    """A TB registration's closing assessment with the name of who made it."""
    row = db.execute(select(TbClosing, User.display_name).outerjoin(User, User.id == TbClosing.assessed_by_user_id)
                     .where(TbClosing.registration_id == registration_id)).first()
    return (row[0], row[1]) if row else None


def open_follow_ups_of(db: Session, registration_id: int) -> list[ChronicFollowUp]:
    return list(db.scalars(select(ChronicFollowUp).where(ChronicFollowUp.registration_id == registration_id,
                                                         ChronicFollowUp.status == "open")))


def patient_contracts_at(db: Session, patient_id: int, institution_id: int) -> list[FamilyDoctorContract]:
    """The patient's contracts not terminated with teams of the institution."""
    return list(db.scalars(select(FamilyDoctorContract).join(
        FamilyDoctorTeam, FamilyDoctorTeam.id == FamilyDoctorContract.team_id).where(
        FamilyDoctorContract.patient_id == patient_id, FamilyDoctorTeam.institution_id == institution_id,
        FamilyDoctorContract.status == "active").order_by(FamilyDoctorContract.start_on)))


# ------------------------------------------------------------------------------- screening (screening.py)

def screening_round(db: Session, round_id: int) -> ScreeningRound | None:
    return db.get(ScreeningRound, round_id)


def screening_rounds(institution_id: int) -> Select[Any]:
    return (select(ScreeningRound).where(ScreeningRound.institution_id == institution_id)
            .order_by(ScreeningRound.held_on.desc(), ScreeningRound.id.desc()))


def screening_record(db: Session, record_id: int) -> ScreeningRecord | None:
    return db.get(ScreeningRecord, record_id)


def screened_in_round(db: Session, round_id: int, patient_id: int) -> ScreeningRecord | None:
    return db.scalar(select(ScreeningRecord).where(ScreeningRecord.round_id == round_id,
                                                   ScreeningRecord.patient_id == patient_id))


def screening_rows(subject: Subject, institution_id: int, *, round_id: int | None = None,
                   outcome: str = "") -> Select[Any]:
    """Screening records of the institution (one round's, or the suggestions awaiting a decision) with their
    patients the subject may see, newest first."""
    columns: tuple[Any, ...] = (ScreeningRecord, Patient, ScreeningRound)
    stmt = (select(*columns)
            .join(ScreeningRound, ScreeningRound.id == ScreeningRecord.round_id)
            .join(Patient, Patient.id == ScreeningRecord.patient_id)
            .where(ScreeningRound.institution_id == institution_id, readable(subject))
            .order_by(ScreeningRecord.measured_on.desc(), ScreeningRecord.id.desc()))
    if round_id is not None:
        stmt = stmt.where(ScreeningRecord.round_id == round_id)
    if outcome:
        stmt = stmt.where(ScreeningRecord.outcome == outcome)
    return stmt


def round_counts(db: Session, round_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per round: residents screened, and those with an abnormal finding."""
    return {rid: (n, abnormal or 0) for rid, n, abnormal in db.execute(
        select(ScreeningRecord.round_id, func.count(),
               func.sum(case((ScreeningRecord.finding != "normal", 1), else_=0)))
        .where(ScreeningRecord.round_id.in_(round_ids)).group_by(ScreeningRecord.round_id))}


def elderly_checked_since(db: Session, institution_id: int, since: date) -> set[int]:
    """Residents a 65+ health-check round (老年人健康体检) of the institution saw on or after `since`."""
    return set(db.scalars(select(ScreeningRecord.patient_id).join(
        ScreeningRound, ScreeningRound.id == ScreeningRecord.round_id).where(
        ScreeningRound.institution_id == institution_id, ScreeningRound.kind == "elderly65",
        ScreeningRecord.measured_on >= since)))


def bp_screened_since(db: Session, institution_id: int, since: date) -> set[int]:
    """Residents whose blood pressure a screening round of the institution measured on or after `since`, or
    who are in its hypertension registry (managed: measured at every follow-up)."""
    screened = set(db.scalars(select(ScreeningRecord.patient_id).join(
        ScreeningRound, ScreeningRound.id == ScreeningRecord.round_id).where(
        ScreeningRound.institution_id == institution_id, ScreeningRecord.measured_on >= since,
        ScreeningRecord.sbp.is_not(None))))
    return screened | set(db.scalars(select(ChronicRegistration.patient_id).where(
        ChronicRegistration.institution_id == institution_id, ChronicRegistration.condition == "hypertension",
        ChronicRegistration.status == "under_care")))


def patients_named(db: Session, subject: Subject, ids: Iterable[int], limit: int = 500) -> list[Patient]:
    """The patients among `ids` the subject may see, by name."""
    wanted = list(ids)
    if not wanted:
        return []
    return list(db.scalars(select(Patient).where(Patient.id.in_(wanted), readable(subject))
                           .order_by(Patient.name, Patient.id).limit(limit)))


# ------------------------------------------------------------------------------------------------ visits

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
        *in_force(on)).limit(1))


def count_due(db: Session, subject: Subject, today: date) -> int:
    """The rows of the overdue list with today's due included (`overdue_statement(..., with_today=True)`)."""
    stmt = overdue_statement(subject, today, ListParams(), with_today=True).order_by(None)
    return db.scalar(select(func.count()).select_from(stmt.subquery())) or 0


# ------------------------------------------------------------------ overdue list, reminders, calls (issue 20 §5)


def overdue_statement(subject: Subject, today: date, lp: ListParams, *, team_id: int | None = None,
                      doctor_id: int | None = None, village: str | None = None,
                      with_today: bool = False) -> Select[Any]:
    """The acting institution's open follow-ups due before `today` (逾期未随访; `with_today`: or on it, the
    workbench's count) of patients the subject may see, narrowed by team, responsible doctor, village (the
    team's), the list kit's search (patient name), due-date range and status (the condition); most overdue
    first."""
    columns: tuple[Any, ...] = (ChronicFollowUp, ChronicRegistration, Patient)
    stmt = (select(*columns)
            .join(ChronicRegistration, ChronicRegistration.id == ChronicFollowUp.registration_id)
            .join(Patient, Patient.id == ChronicFollowUp.patient_id)
            .outerjoin(FamilyDoctorTeam, FamilyDoctorTeam.id == ChronicFollowUp.team_id)
            .where(ChronicFollowUp.institution_id == subject.acting_institution_id,
                   ChronicFollowUp.status == "open",
                   ChronicFollowUp.due_on <= today if with_today else ChronicFollowUp.due_on < today,
                   readable(subject)))
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


def registrations_managed(db: Session, institutions: list[int], end: date, conditions: tuple[str, ...] = MEASURED,
                          *, under_care: bool = True) -> list[tuple[int, int, int, int | None, str, date, int | None]]:
    """The registries' registrations (hypertension and diabetes unless told) under care (`under_care`; or in any
    status) at the institutions, enrolled on or before `end`: (id, patient, institution, team, condition, enrolled
    on, responsible doctor)."""
    r = ChronicRegistration
    stmt = (select(r.id, r.patient_id, r.institution_id, r.team_id, r.condition, r.enrolled_on, r.responsible_user_id)
            .where(r.institution_id.in_(institutions), r.enrolled_on <= end, r.condition.in_(conditions))
            .order_by(r.id))
    if under_care:
        stmt = stmt.where(r.status == "under_care")
    return [tuple(row) for row in db.execute(stmt)]  # type: ignore[misc]


def smi_visits_between(db: Session, institutions: list[int], start: date, end: date,
                       ) -> list[tuple[int, date, str | None, dict[str, Any] | None, str | None]]:
    """Severe mental disorders' recorded follow-ups done in [start, end] at the institutions: (registration, day,
    classification, detail, referral reason), in visit order."""
    f, r = ChronicFollowUp, ChronicRegistration
    return [tuple(row) for row in db.execute(  # type: ignore[misc]
        select(f.registration_id, f.done_on, f.classification, f.detail, f.referral_reason)
        .join(r, r.id == f.registration_id)
        .where(f.institution_id.in_(institutions), f.status == "done", f.done_on >= start, f.done_on <= end,
               r.condition == "smi")
        .order_by(f.done_on, f.id))]


def up_referrals_sent(db: Session, patient_ids: list[int], institutions: list[int], start: datetime, end: datetime,
                      ) -> list[tuple[int, datetime]]:
    """Up-referrals of the patients the institutions sent (not drafts, not cancelled) made in [start, end):
    (patient, made at)."""
    if not patient_ids:
        return []
    return [(p, at) for p, at in db.execute(
        select(Referral.patient_id, Referral.created_at).where(
            Referral.patient_id.in_(patient_ids), Referral.from_institution_id.in_(institutions),
            Referral.direction == Direction.up, Referral.status.not_in((Status.draft, Status.cancelled)),
            Referral.created_at >= start, Referral.created_at < end))]


def notifications(db: Session, registration_ids: list[int]) -> dict[int, date]:
    """The TB notification day of each registration that has one."""
    if not registration_ids:
        return {}
    r = ChronicRegistration
    return {rid: day for rid, day in db.execute(
        select(r.id, r.notified_on).where(r.id.in_(registration_ids), r.notified_on.is_not(None))) if day}


def first_visits(db: Session, registration_ids: list[int]) -> dict[int, date]:
    """Each registration's first recorded follow-up day."""
    if not registration_ids:
        return {}
    f = ChronicFollowUp
    return {rid: day for rid, day in db.execute(
        select(f.registration_id, func.min(f.done_on)).where(f.registration_id.in_(registration_ids),
                                                             f.status == "done").group_by(f.registration_id)) if day}


def tb_closings_between(db: Session, registration_ids: list[int], start: date, end: date) -> list[TbClosing]:
    """The closing assessments of the registrations with a stop in [start, end]."""
    if not registration_ids:
        return []
    return list(db.scalars(select(TbClosing).where(TbClosing.registration_id.in_(registration_ids),
                                                   TbClosing.stopped_on >= start, TbClosing.stopped_on <= end)))


def registrations_counted(db: Session, institutions: list[int], condition: str, end: date,
                          ) -> list[tuple[int, int, int, int | None, date, int | None, str]]:
    """A registry's registrations at the institutions enrolled on or before `end`, in any status (the monthly
    programme figures count each by its status as of a month's end, `status_changes`): (id, patient,
    institution, team, enrolled on, responsible doctor, current status)."""
    r = ChronicRegistration
    return [tuple(row) for row in db.execute(  # type: ignore[misc]
        select(r.id, r.patient_id, r.institution_id, r.team_id, r.enrolled_on, r.responsible_user_id, r.status)
        .where(r.institution_id.in_(institutions), r.condition == condition, r.enrolled_on <= end)
        .order_by(r.id))]


def status_changes(db: Session, institutions: list[int], condition: str, end: date,
                   ) -> list[tuple[int, date, str | None, str | None]]:
    """The status history of the registrations `registrations_counted` reads: (registration, effective on, from,
    to), oldest first."""
    r, e = ChronicRegistration, ChronicRegistrationEvent
    return [tuple(row) for row in db.execute(  # type: ignore[misc]
        select(e.registration_id, e.effective_on, e.from_value, e.to_value)
        .join(r, r.id == e.registration_id)
        .where(r.institution_id.in_(institutions), r.condition == condition, r.enrolled_on <= end,
               e.kind == "status")
        .order_by(e.registration_id, e.effective_on, e.id))]


def follow_ups_due(db: Session, institutions: list[int], start: date, end: date,
                   ) -> list[tuple[int, date, str, date | None, int, int]]:
    """Follow-ups at the institutions due in [start, end], not cancelled: (registration, due, status, done on, id,
    institution)."""
    f = ChronicFollowUp
    return [tuple(row) for row in db.execute(  # type: ignore[misc]
        select(f.registration_id, f.due_on, f.status, f.done_on, f.id, f.institution_id)
        .where(f.institution_id.in_(institutions), f.due_on >= start, f.due_on <= end, f.status != "cancelled"))]


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


def inpatient_admissions_between(db: Session, patient_ids: list[int], first: date, last: date,
                                 ) -> list[tuple[int, int, date]]:
    """Inpatient stays of the patients imported from the members' HIS (matched to the person by resident ID),
    admitted on a day in [first, last]: (encounter id, patient, admission day)."""
    if not patient_ids:
        return []
    return [tuple(r) for r in db.execute(  # type: ignore[misc]
        select(Encounter.id, Encounter.patient_id, Encounter.visit_date)
        .where(Encounter.patient_id.in_(patient_ids), Encounter.kind == EncounterKind.inpatient,
               Encounter.visit_date >= first, Encounter.visit_date <= last))]


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


def open_alarms_of(db: Session, patient_id: int, institution_id: int) -> list[ChronicAlarm]:
    """The patient's unacknowledged alarms at the institution, newest first."""
    return list(db.scalars(select(ChronicAlarm).where(
        ChronicAlarm.patient_id == patient_id, ChronicAlarm.institution_id == institution_id,
        ChronicAlarm.acknowledged_at.is_(None)).order_by(ChronicAlarm.measured_at.desc()).limit(20)))


# ------------------------------------------------------------------ plans in the shared record (chronic/record.py)
# A registration with its follow-ups is the patient's chronic care plan. Involved in it (who reads it as their
# own, `policy.entry_visible`): the managing institution, the institution of the registration's team, and the
# institutions of the teams the patient has a contract in force with (the family doctor). Everyone else reads it
# through the shared record (consent, a grant including it, break-glass). The record fast path compiles these
# same statements (record/fastpath.py).


def plan_rows(patient: Any) -> Select[Any]:
    """The patient's registrations, newest first: id, created_at, managing institution, the team's institution,
    condition, ICD-10, status, the next open follow-up's due date."""
    team = aliased(FamilyDoctorTeam)
    next_due = (select(func.min(ChronicFollowUp.due_on))
                .where(ChronicFollowUp.registration_id == ChronicRegistration.id, ChronicFollowUp.status == "open")
                .scalar_subquery())
    columns: tuple[Any, ...] = (ChronicRegistration.id, ChronicRegistration.created_at,
                                ChronicRegistration.institution_id, team.institution_id, ChronicRegistration.condition,
                                ChronicRegistration.icd10, ChronicRegistration.status, next_due)
    return (select(*columns)
            .outerjoin(team, team.id == ChronicRegistration.team_id)
            .where(ChronicRegistration.patient_id == patient)
            .order_by(ChronicRegistration.created_at.desc(), ChronicRegistration.id.desc()))


def family_doctor_institutions(patient: Any, on: Any) -> Select[Any]:
    """The institutions of the teams the patient has a contract in force with on `on`."""
    return (select(FamilyDoctorTeam.institution_id).distinct()
            .join(FamilyDoctorContract, FamilyDoctorContract.team_id == FamilyDoctorTeam.id)
            .where(FamilyDoctorContract.patient_id == patient, *in_force(on)))


def plans_of_patient(db: Session, patient_id: int, on: date, limit: int) -> tuple[list[Any], list[int]]:
    """`plan_rows` (at most `limit`) and `family_doctor_institutions` of the patient."""
    rows = list(db.execute(plan_rows(patient_id).limit(limit)))
    return rows, sorted(db.scalars(family_doctor_institutions(patient_id, on)))


def plan_involved(db: Session, reg: ChronicRegistration, on: date) -> list[int]:
    """The institutions a registration's plan is their own for (`plan_rows`' rule for one registration)."""
    team_inst = db.scalar(select(FamilyDoctorTeam.institution_id).where(FamilyDoctorTeam.id == reg.team_id)) \
        if reg.team_id is not None else None
    return [i for i in (reg.institution_id, team_inst) if i is not None] + \
        list(db.scalars(family_doctor_institutions(reg.patient_id, on)))


def plan_parts(db: Session, registration_ids: list[int]) -> tuple[
        dict[int, ChronicRegistration], dict[int, list[ChronicFollowUp]], dict[int, str], dict[int, str]]:
    """For the FHIR CarePlans of these registrations: the rows, their follow-ups (by due date), the teams' names
    and the responsible doctors' names."""
    regs = {r.id: r for r in db.scalars(select(ChronicRegistration).where(ChronicRegistration.id.in_(registration_ids)))}
    follow: dict[int, list[ChronicFollowUp]] = {i: [] for i in regs}
    for f in db.scalars(select(ChronicFollowUp).where(ChronicFollowUp.registration_id.in_(list(regs)))
                        .order_by(ChronicFollowUp.due_on, ChronicFollowUp.id)):
        follow[f.registration_id].append(f)
    team_ids = {r.team_id for r in regs.values() if r.team_id is not None}
    teams = {tid: name for tid, name in db.execute(select(FamilyDoctorTeam.id, FamilyDoctorTeam.name)
                                                   .where(FamilyDoctorTeam.id.in_(team_ids)))} if team_ids else {}
    users = user_names(db, {r.responsible_user_id for r in regs.values() if r.responsible_user_id is not None})
    return regs, follow, teams, users


def plan_events(db: Session, registration_ids: list[int]) -> dict[int, list[ChronicRegistrationEvent]]:
    """For the FHIR CarePlans: each registration's status and TB phase changes, oldest first (its end, its
    lastUpdated)."""
    events: dict[int, list[ChronicRegistrationEvent]] = {i: [] for i in registration_ids}
    e = ChronicRegistrationEvent
    for row in db.scalars(select(e).where(e.registration_id.in_(registration_ids), e.kind.in_(("status", "phase")))
                          .order_by(e.effective_on, e.id)):
        events[row.registration_id].append(row)
    return events


# ------------------------------------------------------------------ stored monthly outcome figures


def institutions_with_registries(db: Session, conditions: tuple[str, ...] = MEASURED) -> list[int]:
    """The institutions with a registration in the registries."""
    return list(db.scalars(select(ChronicRegistration.institution_id).where(
        ChronicRegistration.condition.in_(conditions)).distinct().order_by(ChronicRegistration.institution_id)))


def outcome_months_built(db: Session, institution_id: int) -> datetime | None:
    """When the institution's stored figures were last built (None: never)."""
    return db.scalar(select(func.max(ChronicOutcomeMonth.computed_at))
                     .where(ChronicOutcomeMonth.institution_id == institution_id))


def earliest_status_change_since(db: Session, institution_id: int, since: datetime) -> date | None:
    """The earliest effective day of the status changes recorded after `since` in the institution's hypertension
    and diabetes registries (a change may be dated back to the enrolment)."""
    r, e = ChronicRegistration, ChronicRegistrationEvent
    return db.scalar(select(func.min(e.effective_on)).join(r, r.id == e.registration_id).where(
        r.institution_id == institution_id, r.condition.in_(MEASURED), e.kind == "status", e.created_at > since))


def replace_outcome_months(db: Session, institution_id: int, condition: str, months: list[str],
                           rows: list[dict[str, Any]]) -> None:
    """The institution's stored figures of the registry for `months`, replaced by `rows`."""
    m = ChronicOutcomeMonth
    db.execute(delete(m).where(m.institution_id == institution_id, m.condition == condition, m.month.in_(months)))
    if rows:
        db.execute(insert(m), rows)


def outcome_months(db: Session, institutions: list[int], condition: str, grouping: str, months: list[str],
                   ) -> list[ChronicOutcomeMonth]:
    m = ChronicOutcomeMonth
    return list(db.scalars(select(m).where(m.institution_id.in_(institutions), m.condition == condition,
                                           m.grouping == grouping, m.month.in_(months))))


# ------------------------------------------------------------------ groups (FHIR Group: fhir/groups.py)


def team(db: Session, team_id: int) -> FamilyDoctorTeam | None:
    return db.get(FamilyDoctorTeam, team_id)


def team_patients(db: Session, subject: Subject, team_id: int, on: date) -> list[int]:
    """The team's residents with a contract in force on `on` that the subject may see, by id."""
    return list(db.scalars(select(FamilyDoctorContract.patient_id).distinct().where(
        FamilyDoctorContract.team_id == team_id, *in_force(on),
        FamilyDoctorContract.patient_id.in_(readable_ids(subject))).order_by(FamilyDoctorContract.patient_id)))


def registry_patients(db: Session, subject: Subject, institution_id: int, condition: str) -> list[int]:
    """The patients under care in the institution's registry of the condition that the subject may see, by id."""
    return list(db.scalars(select(ChronicRegistration.patient_id).distinct().where(
        ChronicRegistration.institution_id == institution_id, ChronicRegistration.condition == condition,
        ChronicRegistration.status == "under_care",
        ChronicRegistration.patient_id.in_(readable_ids(subject))).order_by(ChronicRegistration.patient_id)))


def registries_of(db: Session, institution_id: int) -> list[str]:
    """The conditions of the institution's registries with a patient under care."""
    return list(db.scalars(select(ChronicRegistration.condition).distinct().where(
        ChronicRegistration.institution_id == institution_id, ChronicRegistration.status == "under_care")
        .order_by(ChronicRegistration.condition)))
