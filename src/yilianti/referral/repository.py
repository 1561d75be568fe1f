"""Queries of referrals and their follow-up tasks (access rules stay in authz.policy and the service)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from yilianti.alliance.repository import current_on
from yilianti.kit import clock
from yilianti.models.alliance import Alliance, Department, Institution, Membership
from yilianti.models.referral import FollowUpTask, Referral, ReferralHistory
from yilianti.models.scheduling import ClinicSession, Pool, Schedule, SessionStatus, Slot, Ward
from yilianti.referral.states import FINAL, Status


def up_referrals_of_patient_at(db: Session, patient_id: int, institution_id: int | None) -> list[Referral]:
    """The patient's upward referrals sent or received by the institution, newest first (to link a
    downward referral to)."""
    return list(db.scalars(select(Referral).where(
        Referral.patient_id == patient_id, Referral.direction == "up",
        (Referral.from_institution_id == institution_id) | (Referral.to_institution_id == institution_id))
        .order_by(Referral.id.desc())))


def follow_up_tasks_of(db: Session, referral_id: int) -> list[FollowUpTask]:
    """Follow-up tasks of one referral, by due date."""
    return list(db.scalars(select(FollowUpTask).where(FollowUpTask.referral_id == referral_id)
                           .order_by(FollowUpTask.due_on, FollowUpTask.id)))


def history(db: Session, referral_id: int) -> list[ReferralHistory]:
    """The referral's status changes, oldest first (no access check: `service.history` makes it)."""
    return list(db.scalars(select(ReferralHistory).where(ReferralHistory.referral_id == referral_id)
                           .order_by(ReferralHistory.at, ReferralHistory.id)))


# ------------------------------------------------------------------------------------- worklists


def worklist_statement(institution_id: int | None, sender: bool, bucket: str, now: datetime, *,
                       direction: str | None = None, priority: str | None = None,
                       patient_id: int | None = None) -> Select[Any]:
    """Referrals the institution sent (sender) or receives — not others' drafts — cut by worklist bucket,
    direction, priority and patient."""
    column = Referral.from_institution_id if sender else Referral.to_institution_id
    q = select(Referral).where(column == institution_id)
    if not sender:
        q = q.where(Referral.status != Status.draft)  # drafts are the sender's own
    by_bucket = {
        "to_triage": Referral.status.in_((Status.submitted, Status.received)),
        # an accepted down-referral needs no slot: the grassroots site waits for the patient (or visits)
        "awaiting_booking": and_(Referral.status == Status.accepted, Referral.direction != "down"),
        "awaiting_arrival": or_(Referral.status == Status.scheduled,
                                and_(Referral.status == Status.accepted, Referral.direction == "down")),
        "awaiting_outcome": Referral.status == Status.arrived,
        "overdue": and_(Referral.due_at < now, Referral.status.not_in(tuple(FINAL))),
        "closed": Referral.status.in_(tuple(FINAL)),
        "drafts": Referral.status == Status.draft,
    }
    if bucket in by_bucket:
        q = q.where(by_bucket[bucket])
    if direction:
        q = q.where(Referral.direction == direction)
    if priority:
        q = q.where(Referral.priority == priority)
    if patient_id is not None:
        q = q.where(Referral.patient_id == patient_id)
    return q


def worklist_rows(db: Session, stmt: Select[Any], closed: bool, limit: int) -> list[Referral]:
    """The worklist in its order: by due time; the closed by last change, newest first."""
    order = (Referral.due_at.asc(), Referral.id.asc()) if not closed else (Referral.updated_at.desc(),)
    return list(db.scalars(stmt.order_by(*order).limit(limit)))


def count_rows(db: Session, stmt: Select[Any]) -> int:
    return db.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def follow_up_tasks_at(db: Session, institution_id: int | None, status: str | None = "open") -> list[FollowUpTask]:
    """The institution's follow-up tasks (in one status), by due date."""
    q = select(FollowUpTask).where(FollowUpTask.institution_id == institution_id)
    if status:
        q = q.where(FollowUpTask.status == status)
    return list(db.scalars(q.order_by(FollowUpTask.due_on, FollowUpTask.id)))


def overdue_referrals(db: Session, now: datetime, limit: int = 1000) -> list[Referral]:
    """Submitted, unfinished referrals past their step's deadline, the longest overdue first."""
    return list(db.scalars(select(Referral).where(Referral.due_at < now, Referral.status.not_in(tuple(FINAL)),
                                                  Referral.status != Status.draft)
                           .order_by(Referral.due_at).limit(limit)))


# ------------------------------------------------------------------------------------- routing help


def _current() -> ColumnElement[bool]:
    return current_on(clock.today_local())


def _like(spec: str) -> str:
    return "%" + spec.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _matches_schedule(spec: str) -> ColumnElement[bool]:
    pat = _like(spec)
    return or_(Schedule.specialty.like(pat, escape="\\"), Schedule.name.like(pat, escape="\\"),
               Department.name.like(pat, escape="\\"), Department.specialty.like(pat, escape="\\"))


def _matches_ward(spec: str) -> ColumnElement[bool]:
    pat = _like(spec)
    return or_(Ward.name.like(pat, escape="\\"), Department.name.like(pat, escape="\\"),
               Department.specialty.like(pat, escape="\\"))


def current_alliance_roles(db: Session, institution_id: int) -> list[tuple[int, str, str]]:
    """(alliance id, the institution's role, whom the alliance reserves for) of its memberships in force in
    active alliances."""
    return [(a, r, f) for a, r, f in db.execute(
        select(Membership.alliance_id, Membership.role, Alliance.reserve_for)
        .join(Alliance, Alliance.id == Membership.alliance_id)
        .where(Membership.institution_id == institution_id, _current(), Alliance.active.is_(True)))]


def session_option_rows(db: Session, origin_id: int, institution_ids: list[int], specialty: str | None,
                        start: date, days: int, now: datetime, reserve_alliances: list[int]) -> list[Any]:
    """(session id, site, schedule name, department name, specialty, starts, ends, free reserved slots the
    origin may use, free public slots) of open sessions not started at these sites in [start, start + days)
    (of a schedule, department or specialty matching `specialty`), soonest first."""
    usable_reserve = and_(Slot.pool == Pool.reserved, ClinicSession.reserve_alliance_id.in_(reserve_alliances or [-1]),
                          ClinicSession.reserve_released_at.is_(None), Schedule.institution_id != origin_id)
    free_reserved = func.sum(func.cast(and_(Slot.booked.is_(False), usable_reserve), type_=Slot.seq.type))
    free_public = func.sum(func.cast(and_(Slot.booked.is_(False), Slot.pool == Pool.public), type_=Slot.seq.type))
    stmt = (select(ClinicSession.id, Schedule.institution_id, Schedule.name, Department.name, Schedule.specialty,
                   ClinicSession.starts_at, ClinicSession.ends_at, free_reserved, free_public)
            .join(Schedule, Schedule.id == ClinicSession.schedule_id)
            .outerjoin(Department, Department.id == Schedule.department_id)
            .join(Slot, Slot.session_id == ClinicSession.id)
            .where(Schedule.institution_id.in_(institution_ids), Schedule.active.is_(True),
                   ClinicSession.status == SessionStatus.open, ClinicSession.starts_at > now,
                   ClinicSession.day >= start, ClinicSession.day < start + timedelta(days=days))
            .group_by(ClinicSession.id, Schedule.institution_id, Schedule.name, Department.name, Schedule.specialty,
                      ClinicSession.starts_at, ClinicSession.ends_at)
            .order_by(ClinicSession.starts_at, ClinicSession.id))
    if specialty:
        stmt = stmt.where(_matches_schedule(specialty))
    return list(db.execute(stmt))


def wards_at(db: Session, institution_ids: list[int], specialty: str | None) -> list[tuple[Ward, str | None]]:
    """Active wards of these institutions (matching `specialty`) with their department's name, by name."""
    stmt = (select(Ward, Department.name).outerjoin(Department, Department.id == Ward.department_id)
            .where(Ward.institution_id.in_(institution_ids), Ward.active.is_(True)).order_by(Ward.name, Ward.id))
    if specialty:
        stmt = stmt.where(_matches_ward(specialty))
    return [(w, d) for w, d in db.execute(stmt)]


def partner_candidates(db: Session, alliance_ids: list[int], other_than: int) -> list[Institution]:
    """Active institutions with a membership in force of one of the alliances, other than `other_than`."""
    member_ids = select(Membership.institution_id).where(Membership.alliance_id.in_(alliance_ids), _current())
    return list(db.scalars(select(Institution).where(Institution.id.in_(member_ids), Institution.id != other_than,
                                                     Institution.active.is_(True))))


def with_department_of(db: Session, institution_ids: list[int], specialty: str) -> set[int]:
    """Those of the institutions with an active department whose name or specialty matches."""
    pat = _like(specialty)
    return set(db.scalars(select(Department.institution_id).where(
        Department.institution_id.in_(institution_ids), Department.active.is_(True),
        or_(Department.name.like(pat, escape="\\"), Department.specialty.like(pat, escape="\\")))))


def referrals_of_patient(db: Session, patient_id: int, limit: int) -> list[Referral]:
    """The patient's referrals, newest first."""
    return list(db.scalars(select(Referral).where(Referral.patient_id == patient_id)
                           .order_by(Referral.created_at.desc()).limit(limit)))
