"""Schedules, sessions, reserved pools, booking that never overbooks, the wait-list, bed pools.

Concurrency: a booking claims one slot row with a conditional UPDATE … RETURNING; the
booking row is inserted only if that UPDATE returned a row, in the same transaction. On
PostgreSQL "any free slot" uses `FOR UPDATE SKIP LOCKED` so concurrent bookers take
different rows instead of queueing on one; on SQLite every transaction is BEGIN IMMEDIATE
(one writer). Partial unique indexes back this up: one active booking per slot, one per
patient per session.
"""

from __future__ import annotations

import math
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, and_, exists, func, insert, or_, select, update
from sqlalchemy import Integer as _Int
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, joinedload

from yilianti.alliance.repository import current_on
from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.models.alliance import (
    GRASSROOTS_KINDS,
    Alliance,
    Department,
    Institution,
    MemberRole,
    Membership,
)
from yilianti.models.patient import GrantKind, Patient
from yilianti.models.scheduling import (
    ACTIVE_BOOKING,
    BedReservation,
    Booking,
    BookingRequest,
    BookingStatus,
    ClinicSession,
    Closure,
    Pool,
    Schedule,
    ScheduleTemplate,
    SessionStatus,
    Slot,
    Ward,
)
from yilianti.models.workforce import Practitioner
from yilianti.notifications.service import notify
from yilianti.scheduling.schemas import (
    BedReservationIn,
    BookingIn,
    ScheduleIn,
    TemplateIn,
    WaitRequestIn,
    WardIn,
)


class SlotFull(Conflict):
    code, default_message = "slot_full", "该时段已约满，可加入候补登记"


class DuplicateBooking(Conflict):
    code, default_message = "duplicate_booking", "该患者在此出诊时段已有预约"


class SessionClosed(Conflict):
    code, default_message = "session_not_bookable", "该出诊时段已停诊或已开始，不能预约"


class BedsFull(Conflict):
    code, default_message = "beds_full", "该病区暂无可预留床位"


# ---------------------------------------------------------------------------------------- helpers


def reserved_count(capacity: int, share: float | None) -> int:
    """reserved = ceil(capacity × share) (DOMAIN.md §3); tolerant of float noise (1/3 × 30 = 10)."""
    if not share or share <= 0:
        return 0
    # shares are stored with 4 decimals: 0.3333 or 0.3334 mean one third
    simple = Fraction(share).limit_denominator(12)
    exact = simple if abs(float(simple) - share) < 5e-4 else Fraction(share)
    return min(capacity, math.ceil(capacity * exact))


def _reserve_positions(capacity: int, reserved: int) -> set[int]:
    """Spread reserved seats over the session (seq 1-based) so members get varied times."""
    if reserved <= 0:
        return set()
    return {int(i * capacity / reserved) + 1 for i in range(reserved)}


def _is_staff_of(subject: Subject, institution_id: int, *roles: str) -> bool:
    if subject.is_system_admin:
        return True
    return subject.acting_institution_id == institution_id and subject.has(*roles)


def _require_scheduler(subject: Subject, institution_id: int) -> None:
    if not _is_staff_of(subject, institution_id, "institution_admin", "coordinator"):
        raise Forbidden("只有本院的机构管理员或转诊协调员可以管理排班")


def _current_membership(db: Session, alliance_id: int, institution_id: int) -> Membership | None:
    today = clock.today_local()
    return db.scalar(select(Membership).where(
        Membership.alliance_id == alliance_id, Membership.institution_id == institution_id,
        current_on(today)).limit(1))


# ------------------------------------------------------------------------------- the rules, as clauses
# Built from their arguments — values for this module's queries, a row's columns and the placeholders for the
# booking statement (fastpath.BOOK, compiled once with kit/sqlcompile).


def shares_alliance(a: Any, b: Any, on: Any) -> ColumnElement[bool]:
    """Institutions `a` and `b` are the same or current members of one alliance on `on`."""
    m1, m2 = aliased(Membership, name="m1"), aliased(Membership, name="m2")
    return or_(a == b, exists().where(m1.institution_id == a, m2.institution_id == b,
                                      m2.alliance_id == m1.alliance_id, current_on(on, m1), current_on(on, m2)))


def reserve_open(session: Any) -> ColumnElement[bool]:
    """The session (ClinicSession or an alias) still holds a reserve for an alliance."""
    return and_(session.reserve_alliance_id.is_not(None), session.reserve_released_at.is_(None))


def may_use_reserve(institution: Any, alliance: Any, site: Any, on: Any) -> ColumnElement[bool]:
    """The lead's reserve is for the members below it: a current member of the reserving alliance other than
    the site, not a lead, and grassroots — or any member when the alliance reserves for all members."""
    return and_(institution != site, exists().where(
        Membership.alliance_id == alliance, Membership.institution_id == institution, current_on(on),
        Membership.role != MemberRole.lead, Alliance.id == Membership.alliance_id,
        Institution.id == Membership.institution_id,
        or_(Alliance.reserve_for == "members", Institution.kind.in_(sorted(GRASSROOTS_KINDS)))))


def active_booking(session: Any, patient: Any) -> list[ColumnElement[bool]]:
    """The patient's active booking in the session (at most one: uq_booking_active_patient_session)."""
    return [Booking.session_id == session, Booking.patient_id == patient, Booking.status.in_(ACTIVE_BOOKING)]


def share_alliance(db: Session, a: int, b: int) -> bool:
    return a == b or bool(db.scalar(select(shares_alliance(a, b, clock.today_local()))))


# ---------------------------------------------------------------------------------------- schedules


def create_schedule(db: Session, subject: Subject, data: ScheduleIn) -> Schedule:
    _require_scheduler(subject, data.institution_id)
    fields: dict[str, str] = {}
    if data.practitioner_id is not None and db.get(Practitioner, data.practitioner_id) is None:
        fields["practitioner_id"] = "医师不存在"
    if data.department_id is not None:
        dept = db.get(Department, data.department_id)
        if dept is None or dept.institution_id != data.institution_id:
            fields["department_id"] = "科室不属于该机构"
    if data.reserve_alliance_id is not None:
        m = _current_membership(db, data.reserve_alliance_id, data.institution_id)
        if m is None:
            fields["reserve_alliance_id"] = "本院不是该医联体成员"
        elif m.role != MemberRole.lead:
            fields["reserve_alliance_id"] = "只有牵头医院向下级成员预留号源"
    if fields:
        raise InvalidInput(fields=fields)
    schedule = Schedule(**data.model_dump())
    db.add(schedule)
    db.flush()
    audit.record(db, subject, "create", "schedule", schedule.id, detail=data.model_dump(mode="json"))
    return schedule


def add_template(db: Session, subject: Subject, schedule_id: int, data: TemplateIn) -> ScheduleTemplate:
    schedule = get_schedule(db, schedule_id)
    _require_scheduler(subject, schedule.institution_id)
    tpl = ScheduleTemplate(schedule_id=schedule.id, **data.model_dump())
    db.add(tpl)
    db.flush()
    audit.record(db, subject, "create", "schedule_template", tpl.id, detail=data.model_dump(mode="json"))
    return tpl


def get_schedule(db: Session, schedule_id: int) -> Schedule:
    schedule = db.scalar(select(Schedule).options(joinedload(Schedule.institution), joinedload(Schedule.practitioner),
                                                  joinedload(Schedule.department))
                         .where(Schedule.id == schedule_id))
    if schedule is None:
        raise NotFound()
    return schedule


def schedules_of(db: Session, institution_id: int) -> list[Schedule]:
    return list(db.scalars(select(Schedule).options(joinedload(Schedule.practitioner), joinedload(Schedule.department))
                           .where(Schedule.institution_id == institution_id).order_by(Schedule.name)))


def templates_of(db: Session, schedule_id: int) -> list[ScheduleTemplate]:
    return list(db.scalars(select(ScheduleTemplate).where(ScheduleTemplate.schedule_id == schedule_id)
                           .order_by(ScheduleTemplate.weekday, ScheduleTemplate.start_time)))


def add_closure(db: Session, subject: Subject, institution_id: int, day: date, reason: str,
                schedule_id: int | None = None) -> tuple[Closure, int]:
    """Holiday or ad-hoc closure; sessions already generated that day are cancelled (bookers notified)."""
    _require_scheduler(subject, institution_id)
    if not reason.strip():
        raise InvalidInput(fields={"reason": "请填写停诊原因"})
    closure = Closure(institution_id=institution_id, schedule_id=schedule_id, day=day, reason=reason.strip())
    db.add(closure)
    db.flush()
    audit.record(db, subject, "create", "closure", closure.id, detail={"day": day.isoformat(), "reason": reason})
    stmt = (select(ClinicSession).join(Schedule, Schedule.id == ClinicSession.schedule_id)
            .where(Schedule.institution_id == institution_id, ClinicSession.day == day,
                   ClinicSession.status == SessionStatus.open))
    if schedule_id is not None:
        stmt = stmt.where(ClinicSession.schedule_id == schedule_id)
    cancelled = 0
    for session in db.scalars(stmt):
        cancel_session(db, subject, session.id, reason.strip())
        cancelled += 1
    return closure, cancelled


def generate_sessions(db: Session, subject: Subject | None, schedule_id: int, start: date, end: date) -> int:
    """Templates → dated sessions → slots, for days in [start, end]; existing sessions are kept."""
    schedule = get_schedule(db, schedule_id)
    if subject is not None:
        _require_scheduler(subject, schedule.institution_id)
    if end < start or (end - start).days > 120:
        raise InvalidInput(fields={"end": "日期范围应为0–120天"})
    share = schedule.reserve_share
    cutoff_hours = 24
    if schedule.reserve_alliance_id is not None:
        alliance = db.get(Alliance, schedule.reserve_alliance_id)
        if alliance is not None:
            share = share if share is not None else alliance.slot_reserve_share
            cutoff_hours = alliance.reserve_cutoff_hours
    closed = {(c.day, c.schedule_id) for c in db.scalars(select(Closure).where(
        Closure.institution_id == schedule.institution_id, Closure.day >= start, Closure.day <= end))}
    existing = set(db.scalars(select(ClinicSession.starts_at).where(ClinicSession.schedule_id == schedule_id)))
    existing = {clock.as_utc(e) for e in existing}
    created = 0
    day = start
    templates = templates_of(db, schedule_id)
    while day <= end:
        if (day, None) in closed or (day, schedule_id) in closed:
            day += timedelta(days=1)
            continue
        for tpl in templates:
            if tpl.weekday != day.isoweekday():
                continue
            if (tpl.valid_from and day < tpl.valid_from) or (tpl.valid_to and day > tpl.valid_to):
                continue
            starts = datetime.combine(day, tpl.start_time, clock.SHANGHAI).astimezone(clock.UTC)
            ends = datetime.combine(day, tpl.end_time, clock.SHANGHAI).astimezone(clock.UTC)
            if starts in existing:
                continue
            reserved = reserved_count(tpl.capacity, share) if schedule.reserve_alliance_id else 0
            session = ClinicSession(
                schedule_id=schedule_id, template_id=tpl.id, day=day, starts_at=starts, ends_at=ends,
                capacity=tpl.capacity, reserved_capacity=reserved,
                reserve_alliance_id=schedule.reserve_alliance_id if reserved else None,
                reserve_cutoff_at=starts - timedelta(hours=cutoff_hours) if reserved else None)
            db.add(session)
            db.flush()
            _create_slots(db, session, tpl.timed)
            created += 1
        day += timedelta(days=1)
    if subject is not None and created:
        audit.record(db, subject, "create", "clinic_session", None,
                     detail={"schedule_id": schedule_id, "from": start.isoformat(), "to": end.isoformat(),
                             "created": created})
    return created


def _create_slots(db: Session, session: ClinicSession, timed: bool) -> None:
    reserved = _reserve_positions(session.capacity, session.reserved_capacity)
    step = (clock.as_utc(session.ends_at) - clock.as_utc(session.starts_at)) / session.capacity
    rows = [{"session_id": session.id, "seq": seq,
             "starts_at": clock.as_utc(session.starts_at) + step * (seq - 1) if timed else None,
             "pool": Pool.reserved if seq in reserved else Pool.public,
             "reserved_origin": seq in reserved, "booked": False}
            for seq in range(1, session.capacity + 1)]
    db.execute(insert(Slot), rows)


# ---------------------------------------------------------------------------------------- availability


@dataclass
class Availability:
    session: ClinicSession
    schedule: Schedule
    free_reserved: int
    free_public: int
    booked: int
    pools: list[str]  # pools the asking institution may book from
    reason: str | None  # why it may not book, if pools is empty


def get_session(db: Session, session_id: int) -> ClinicSession:
    session = db.scalar(select(ClinicSession).options(
        joinedload(ClinicSession.schedule).joinedload(Schedule.institution),
        joinedload(ClinicSession.schedule).joinedload(Schedule.practitioner),
        joinedload(ClinicSession.schedule).joinedload(Schedule.department))
        .where(ClinicSession.id == session_id))
    if session is None:
        raise NotFound()
    return session


def pools_for(db: Session, institution_id: int | None, session: ClinicSession) -> tuple[list[str], str | None]:
    """Which pools an institution may book from for this session, or why none."""
    if institution_id is None:
        return [], "请先选择执业机构"
    site_id = session.schedule.institution_id
    if not share_alliance(db, institution_id, site_id):
        return [], "本机构与该院不在同一医联体，不能预约"
    if session.reserve_alliance_id is not None and session.reserve_released_at is None \
            and _may_use_reserve(db, institution_id, session.reserve_alliance_id, site_id):
        return [Pool.reserved, Pool.public], None
    return [Pool.public], None


def _may_use_reserve(db: Session, institution_id: int, alliance_id: int | None, site_id: int) -> bool:
    """The lead's reserve is for the members below it: grassroots only, or every member (a setting)."""
    if alliance_id is None or institution_id == site_id:
        return False
    return bool(db.scalar(select(may_use_reserve(institution_id, alliance_id, site_id, clock.today_local()))))


def availability(db: Session, subject: Subject, session_id: int) -> Availability:
    session = get_session(db, session_id)
    counts = dict(db.execute(select(Slot.pool, func.count()).where(
        Slot.session_id == session_id, Slot.booked.is_(False)).group_by(Slot.pool)).all())
    booked = db.scalar(select(func.count()).select_from(Slot).where(
        Slot.session_id == session_id, Slot.booked.is_(True))) or 0
    pools, reason = pools_for(db, subject.acting_institution_id, session)
    return Availability(session, session.schedule, counts.get(Pool.reserved, 0), counts.get(Pool.public, 0),
                        booked, pools, reason)


def free_slots(db: Session, session_id: int, pools: list[str]) -> list[Slot]:
    return list(db.scalars(select(Slot).where(Slot.session_id == session_id, Slot.booked.is_(False),
                                              Slot.pool.in_(pools)).order_by(Slot.seq)))


def upcoming_sessions(db: Session, *, institution_id: int | None = None, schedule_id: int | None = None,
                      specialty: str | None = None, start: date | None = None, days: int = 14,
                      limit: int = 200) -> list[tuple[ClinicSession, int, int]]:
    """Sessions from `start` (today) for `days`, with (free reserved, free public) counts."""
    start = start or clock.today_local()
    free = (select(Slot.session_id,
                   func.sum(func.cast(and_(Slot.pool == Pool.reserved, Slot.booked.is_(False)), _Int)).label("fr"),
                   func.sum(func.cast(and_(Slot.pool == Pool.public, Slot.booked.is_(False)), _Int)).label("fp"))
            .group_by(Slot.session_id).subquery())
    stmt = (select(ClinicSession, free.c.fr, free.c.fp)
            .join(free, free.c.session_id == ClinicSession.id)
            .join(Schedule, Schedule.id == ClinicSession.schedule_id)
            .options(joinedload(ClinicSession.schedule).joinedload(Schedule.institution),
                     joinedload(ClinicSession.schedule).joinedload(Schedule.practitioner),
                     joinedload(ClinicSession.schedule).joinedload(Schedule.department))
            .where(ClinicSession.day >= start, ClinicSession.day < start + timedelta(days=days),
                   Schedule.active.is_(True))
            .order_by(ClinicSession.starts_at).limit(limit))
    if institution_id:
        stmt = stmt.where(Schedule.institution_id == institution_id)
    if schedule_id:
        stmt = stmt.where(ClinicSession.schedule_id == schedule_id)
    if specialty:
        stmt = stmt.where(or_(Schedule.specialty.contains(specialty), Schedule.name.contains(specialty)))
    return [(s, int(fr or 0), int(fp or 0)) for s, fr, fp in db.execute(stmt).unique()]


# ---------------------------------------------------------------------------------------- booking


def _booking_number(session: ClinicSession, seq: int) -> str:
    return f"{session.day:%Y%m%d}-{seq:03d}-{secrets.token_hex(2).upper()}"


def _insert_booking(db: Session, values: dict[str, Any], session: ClinicSession, seq: int) -> Booking:
    """Insert a booking under a fresh number. The number's random part may collide with another
    booking's (same day and sequence in another session): that draws again, inside a savepoint so the
    claimed slot stays claimed. Any other unique violation is the partial index catching a concurrent
    booking of the same patient in this session: the caller's unit of work rolls back with the slot."""
    for attempt in range(4):
        booking = Booking(number=_booking_number(session, seq), **values)
        try:
            with db.begin_nested():
                db.add(booking)
                db.flush()
            return booking
        except IntegrityError as exc:
            if "number" not in str(exc.orig) or attempt == 3:
                raise DuplicateBooking() from None
    raise AssertionError("unreachable")


def _claim(db: Session, session_id: int, pool: str, slot_id: int | None) -> Any:
    if slot_id is not None:
        stmt = (update(Slot).where(Slot.id == slot_id, Slot.session_id == session_id, Slot.pool == pool,
                                   Slot.booked.is_(False))
                .values(booked=True).returning(Slot.id, Slot.seq, Slot.starts_at, Slot.pool))
        return db.execute(stmt).first()
    pick = (select(Slot.id).where(Slot.session_id == session_id, Slot.pool == pool, Slot.booked.is_(False))
            .order_by(Slot.seq).limit(1))
    if db.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (update(Slot).where(Slot.id == pick.scalar_subquery(), Slot.booked.is_(False))
            .values(booked=True).returning(Slot.id, Slot.seq, Slot.starts_at, Slot.pool)
            .execution_options(synchronize_session=False))
    return db.execute(stmt).first()


def book(db: Session, subject: Subject, data: BookingIn, *, rescheduled_from: int | None = None,
         pool_institution_id: int | None = None) -> Booking:
    """`pool_institution_id`: whose pools apply when booking for another site (a referral's origin,
    booked by the receiving site from inside the referral); the caller has checked that relation."""
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden("只有医生、护士或转诊协调员可以预约")
    session = db.scalar(select(ClinicSession).options(joinedload(ClinicSession.schedule))
                        .where(ClinicSession.id == data.session_id))
    if session is None:
        raise NotFound("出诊时段不存在")
    if db.get(Patient, data.patient_id) is None:
        raise NotFound("患者不存在或您无权查看")
    policy.require_patient(db, subject, data.patient_id, action="read", resource_type="booking_patient")
    if session.status != SessionStatus.open or clock.as_utc(session.starts_at) <= clock.now():
        raise SessionClosed()
    pools, reason = pools_for(db, pool_institution_id or subject.acting_institution_id, session)
    if not pools:
        raise Forbidden(reason or "不能预约该出诊时段")
    if data.pool is not None:
        if data.pool not in pools:
            raise Forbidden("本机构不能使用该号源池" if data.pool == Pool.reserved else "不能预约该号源")
        pools = [data.pool]
    duplicate = db.scalar(select(Booking.id).where(*active_booking(session.id, data.patient_id)))
    if duplicate is not None:
        raise DuplicateBooking()
    claimed = None
    for pool in pools:
        claimed = _claim(db, session.id, pool, data.slot_id)
        if claimed is not None:
            break
    if claimed is None:
        if data.slot_id is not None:
            raise SlotFull("该号已被预约，请选择其他号")
        raise SlotFull()
    booking = _insert_booking(db, dict(
        session_id=session.id, slot_id=claimed.id, patient_id=data.patient_id, pool=claimed.pool,
        status=BookingStatus.booked,
        # on behalf of a referral's origin: the booking is the origin's (its list, its
        # arrival notice, the sinking ratio); the user who booked stays recorded
        booked_by_user_id=subject.user_id,
        booked_by_institution_id=pool_institution_id or subject.acting_institution_id,
        note=data.note, referral_id=data.referral_id, rescheduled_from_id=rescheduled_from), session, claimed.seq)
    # the booking itself lets the site see the patient it will receive until 7 days after the
    # session unless cancelled (authz.policy: the booking is the site's grant; no grant row)
    audit.record(db, subject, "create", "booking", booking.id, patient_id=data.patient_id,
                 detail={"session_id": session.id, "seq": claimed.seq, "pool": claimed.pool,
                         "number": booking.number})
    return booking


def _booking_for_change(db: Session, subject: Subject, booking_id: int, *, site_only: bool = False) -> Booking:
    row = db.execute(select(Booking, Schedule.institution_id).join(ClinicSession, ClinicSession.id == Booking.session_id)
                     .join(Schedule, Schedule.id == ClinicSession.schedule_id).where(Booking.id == booking_id)).first()
    if row is None:
        raise NotFound()
    booking, site_id = row
    inst = subject.acting_institution_id
    allowed = {site_id} if site_only else {site_id, booking.booked_by_institution_id}
    if inst not in allowed and not subject.is_system_admin:
        if inst in {site_id, booking.booked_by_institution_id}:
            raise Forbidden("只有出诊机构可以登记到诊或爽约")
        raise NotFound()
    return booking


def cancel(db: Session, subject: Subject, booking_id: int, reason: str = "") -> Booking:
    booking = _booking_for_change(db, subject, booking_id)
    if booking.status != BookingStatus.booked:
        raise Conflict("只有待就诊的预约可以取消")
    session = db.get(ClinicSession, booking.session_id)
    assert session is not None
    booking.status = BookingStatus.cancelled
    booking.cancelled_at = clock.now()
    booking.cancel_reason = reason.strip() or None
    db.flush()
    # free the slot; after the reserve returned to the public pool, a freed reserved seat goes public too
    new_pool = {}
    if session.reserve_released_at is not None:
        new_pool = {"pool": Pool.public}
    db.execute(update(Slot).where(Slot.id == booking.slot_id).values(booked=False, **new_pool))
    policy.end_grants(db, subject, "booking", booking.id)
    audit.record(db, subject, "cancel", "booking", booking.id, patient_id=booking.patient_id, reason=reason or None)
    return booking


def reschedule(db: Session, subject: Subject, booking_id: int, session_id: int, slot_id: int | None = None) -> Booking:
    old = _booking_for_change(db, subject, booking_id)
    if old.status != BookingStatus.booked:
        raise Conflict("只有待就诊的预约可以改约")
    cancel(db, subject, booking_id, "改约")
    return book(db, subject, BookingIn(session_id=session_id, patient_id=old.patient_id, slot_id=slot_id,
                                       note=old.note, referral_id=old.referral_id), rescheduled_from=old.id)


def mark_arrived(db: Session, subject: Subject, booking_id: int) -> Booking:
    booking = _booking_for_change(db, subject, booking_id, site_only=True)
    if booking.status != BookingStatus.booked:
        raise Conflict("该预约当前状态不能登记到诊")
    session = db.get(ClinicSession, booking.session_id)
    assert session is not None
    if session.day > clock.today_local():
        raise Conflict("就诊日尚未到，不能登记到诊")
    booking.status = BookingStatus.arrived
    booking.arrived_at = clock.now()
    audit.record(db, subject, "arrive", "booking", booking.id, patient_id=booking.patient_id)
    notify(db, title="患者已到诊", body=f"预约号 {booking.number}", institution_id=booking.booked_by_institution_id,
           link=f"/bookings/{booking.id}", kind="booking")
    return booking


def mark_no_show(db: Session, subject: Subject, booking_id: int) -> Booking:
    booking = _booking_for_change(db, subject, booking_id, site_only=True)
    if booking.status != BookingStatus.booked:
        raise Conflict("该预约当前状态不能登记爽约")
    session = db.get(ClinicSession, booking.session_id)
    assert session is not None
    if clock.as_utc(session.starts_at) > clock.now():
        raise Conflict("出诊尚未开始，不能登记爽约")
    booking.status = BookingStatus.no_show
    booking.no_show_at = clock.now()
    audit.record(db, subject, "no_show", "booking", booking.id, patient_id=booking.patient_id)
    notify(db, title="患者未按预约就诊", body=f"预约号 {booking.number}，请联系患者",
           institution_id=booking.booked_by_institution_id, link=f"/bookings/{booking.id}", kind="booking")
    return booking


def cancel_session(db: Session, subject: Subject, session_id: int, reason: str) -> int:
    """Stop a session (停诊): every active booking is cancelled and its booker notified."""
    session = get_session(db, session_id)
    _require_scheduler(subject, session.schedule.institution_id)
    if session.status == SessionStatus.cancelled:
        raise Conflict("该出诊时段已停诊")
    if not reason.strip():
        raise InvalidInput(fields={"reason": "请填写停诊原因"})
    session.status = SessionStatus.cancelled
    session.cancelled_reason = reason.strip()
    bookings = list(db.scalars(select(Booking).where(Booking.session_id == session_id,
                                                     Booking.status == BookingStatus.booked)))
    when = clock.fmt_local(session.starts_at)
    for b in bookings:
        b.status = BookingStatus.cancelled
        b.cancelled_at = clock.now()
        b.cancel_reason = f"停诊：{reason.strip()}"
        policy.end_grants(db, subject, "booking", b.id)
        notify(db, title="预约的出诊已停诊，请联系患者改约", urgent=True,
               body=f"{session.schedule.name} {when}；原因：{reason.strip()}；预约号 {b.number}",
               institution_id=b.booked_by_institution_id, link=f"/bookings/{b.id}", kind="booking")
        if b.booked_by_user_id:
            notify(db, title="预约的出诊已停诊，请联系患者改约", urgent=True,
                   body=f"{session.schedule.name} {when}；预约号 {b.number}", user_id=b.booked_by_user_id,
                   link=f"/bookings/{b.id}", kind="booking")
    db.execute(update(Slot).where(Slot.session_id == session_id).values(booked=True))  # nothing more to book
    audit.record(db, subject, "cancel", "clinic_session", session_id, reason=reason.strip(),
                 detail={"bookings_cancelled": len(bookings)})
    return len(bookings)


def release_reserves(db: Session, now: datetime | None = None) -> int:
    """At the cut-off, unused reserved slots return to the public pool. Returns slots released."""
    now = now or clock.now()
    due = list(db.scalars(select(ClinicSession).where(
        ClinicSession.reserve_cutoff_at.is_not(None), ClinicSession.reserve_cutoff_at <= now,
        ClinicSession.reserve_released_at.is_(None)).limit(1000)))
    total = 0
    for session in due:
        result = db.execute(update(Slot).where(Slot.session_id == session.id, Slot.pool == Pool.reserved,
                                               Slot.booked.is_(False)).values(pool=Pool.public))
        released = result.rowcount if isinstance(result, CursorResult) else 0
        session.reserve_released_at = now
        session.reserve_released_count = released or 0
        total += released or 0
        audit.record(db, None, "release_reserve", "clinic_session", session.id, channel="job",
                     detail={"released": released})
    return total


# ---------------------------------------------------------------------------------------- lists


def bookings_of_site(db: Session, subject: Subject, *, made_here: bool = True, day: date | None = None,
                     status: str | None = None, limit: int = 200) -> list[tuple[Booking, ClinicSession, Patient]]:
    """Bookings made by the acting institution (made_here) or to be received by it."""
    inst = subject.acting_institution_id
    stmt = (select(Booking, ClinicSession, Patient)
            .join(ClinicSession, ClinicSession.id == Booking.session_id)
            .join(Schedule, Schedule.id == ClinicSession.schedule_id)
            .join(Patient, Patient.id == Booking.patient_id)
            .options(joinedload(ClinicSession.schedule).joinedload(Schedule.institution),
                     joinedload(ClinicSession.schedule).joinedload(Schedule.practitioner),
                     joinedload(ClinicSession.schedule).joinedload(Schedule.department))
            .order_by(ClinicSession.starts_at.desc(), Booking.id.desc()).limit(limit))
    stmt = stmt.where(Booking.booked_by_institution_id == inst if made_here else Schedule.institution_id == inst)
    if day:
        stmt = stmt.where(ClinicSession.day == day)
    if status:
        stmt = stmt.where(Booking.status == status)
    rows: list[Any] = list(db.execute(stmt).unique())
    if rows:
        audit.record(db, subject, "search", "booking", None,
                     detail={"made_here": made_here, "patients": sorted({p.id for _, _, p in rows})[:200]})
    return rows


def get_booking(db: Session, subject: Subject, booking_id: int) -> tuple[Booking, ClinicSession, Patient, Slot]:
    booking = _booking_for_change(db, subject, booking_id)
    session = get_session(db, booking.session_id)
    patient = db.get(Patient, booking.patient_id)
    slot = db.get(Slot, booking.slot_id)
    assert patient is not None and slot is not None
    audit.record(db, subject, "read", "booking", booking.id, patient_id=patient.id, basis="booking")
    return booking, session, patient, slot


# ---------------------------------------------------------------------------------------- wait-list


def request_wait(db: Session, subject: Subject, data: WaitRequestIn) -> BookingRequest:
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden()
    policy.require_patient(db, subject, data.patient_id, resource_type="booking_request")
    assert subject.acting_institution_id is not None
    if db.get(Institution, data.target_institution_id) is None:
        raise InvalidInput(fields={"target_institution_id": "机构不存在"})
    if not share_alliance(db, subject.acting_institution_id, data.target_institution_id):
        raise Forbidden("本机构与该院不在同一医联体")
    if data.earliest and data.latest and data.latest < data.earliest:
        raise InvalidInput(fields={"latest": "最晚日期早于最早日期"})
    req = BookingRequest(patient_id=data.patient_id, requested_by_user_id=subject.user_id,
                         requested_by_institution_id=subject.acting_institution_id,
                         target_institution_id=data.target_institution_id, schedule_id=data.schedule_id,
                         specialty=data.specialty, earliest=data.earliest, latest=data.latest,
                         contact_by=clock.now() + timedelta(days=data.contact_by_days), note=data.note)
    db.add(req)
    db.flush()
    policy.grant_access(db, subject, patient_id=data.patient_id, institution_id=data.target_institution_id,
                        kind=GrantKind.booking, reason="候补预约", source=("booking_request", req.id),
                        expires_in=timedelta(days=max(data.contact_by_days, 1) + 14))
    notify(db, title="新的候补预约请求", body=f"需在 {clock.fmt_local(req.contact_by)} 前联系患者",
           institution_id=data.target_institution_id, link="/scheduling/waitlist", kind="booking")
    audit.record(db, subject, "create", "booking_request", req.id, patient_id=data.patient_id)
    return req


def waitlist(db: Session, subject: Subject, *, incoming: bool = True,
             status: str = "waiting") -> list[tuple[BookingRequest, Patient]]:
    inst = subject.acting_institution_id
    col = BookingRequest.target_institution_id if incoming else BookingRequest.requested_by_institution_id
    stmt = (select(BookingRequest, Patient).join(Patient, Patient.id == BookingRequest.patient_id)
            .where(col == inst).order_by(BookingRequest.contact_by))
    if status:
        stmt = stmt.where(BookingRequest.status == status)
    return list(db.execute(stmt.limit(300)))


def book_from_request(db: Session, subject: Subject, request_id: int, session_id: int) -> Booking:
    req = db.get(BookingRequest, request_id)
    if req is None or subject.acting_institution_id not in (req.target_institution_id,
                                                            req.requested_by_institution_id):
        raise NotFound()
    if req.status != "waiting":
        raise Conflict("该候补请求已处理")
    booking = book(db, subject, BookingIn(session_id=session_id, patient_id=req.patient_id))
    # a coordinator at the target books from the requester's reserved pool on their behalf
    req.status, req.booking_id, req.handled_by_user_id = "booked", booking.id, subject.user_id
    notify(db, title="候补请求已预约成功", body=f"预约号 {booking.number}",
           institution_id=req.requested_by_institution_id, link=f"/bookings/{booking.id}", kind="booking")
    audit.record(db, subject, "book", "booking_request", req.id, patient_id=req.patient_id)
    return booking


def close_request(db: Session, subject: Subject, request_id: int, reason: str) -> BookingRequest:
    req = db.get(BookingRequest, request_id)
    if req is None or subject.acting_institution_id not in (req.target_institution_id,
                                                            req.requested_by_institution_id):
        raise NotFound()
    if req.status != "waiting":
        raise Conflict("该候补请求已处理")
    if not reason.strip():
        raise InvalidInput(fields={"reason": "请填写关闭原因"})
    req.status, req.closed_reason, req.handled_by_user_id = "closed", reason.strip(), subject.user_id
    policy.end_grants(db, subject, "booking_request", req.id)
    audit.record(db, subject, "close", "booking_request", req.id, patient_id=req.patient_id, reason=reason)
    return req


def overdue_requests(db: Session, now: datetime | None = None) -> int:
    """Requests past their contact-by deadline alert both sides once."""
    now = now or clock.now()
    count = 0
    for req in db.scalars(select(BookingRequest).where(BookingRequest.status == "waiting",
                                                       BookingRequest.contact_by <= now).limit(500)):
        for inst in (req.target_institution_id, req.requested_by_institution_id):
            notify(db, title="候补预约已超过联系时限", urgent=True, institution_id=inst,
                   link="/scheduling/waitlist", kind="booking", dedupe_key=f"waitreq-overdue-{req.id}-{inst}")
        count += 1
    return count


# ---------------------------------------------------------------------------------------- sinking ratio


@dataclass
class MonthFigures:
    month: str
    offered: int
    reserved: int
    reserved_booked: int
    member_booked: int

    @property
    def sinking_ratio(self) -> float | None:
        return self.reserved / self.offered if self.offered else None

    @property
    def reserve_use(self) -> float | None:
        return self.reserved_booked / self.reserved if self.reserved else None


def sinking_by_month(db: Session, alliance_id: int, start: date, end: date) -> list[MonthFigures]:
    """号源下沉比例 (reserved ÷ offered) and its use (reserved booked by members ÷ reserved), per month."""
    sessions = db.execute(select(ClinicSession.id, ClinicSession.day, ClinicSession.capacity,
                                 ClinicSession.reserved_capacity)
                          .join(Schedule, Schedule.id == ClinicSession.schedule_id)
                          .where(Schedule.reserve_alliance_id == alliance_id, ClinicSession.day >= start,
                                 ClinicSession.day <= end, ClinicSession.status == SessionStatus.open)).all()
    booked = dict(db.execute(select(Booking.session_id, func.count())
                             .join(ClinicSession, ClinicSession.id == Booking.session_id)
                             .join(Schedule, Schedule.id == ClinicSession.schedule_id)
                             .where(Schedule.reserve_alliance_id == alliance_id, Booking.pool == Pool.reserved,
                                    Booking.status.in_(("booked", "arrived", "no_show")),
                                    ClinicSession.day >= start, ClinicSession.day <= end)
                             .group_by(Booking.session_id)).all())
    member_booked = dict(db.execute(select(Booking.session_id, func.count())
                                    .join(ClinicSession, ClinicSession.id == Booking.session_id)
                                    .join(Schedule, Schedule.id == ClinicSession.schedule_id)
                                    .where(Schedule.reserve_alliance_id == alliance_id,
                                           Booking.booked_by_institution_id != Schedule.institution_id,
                                           Booking.status.in_(("booked", "arrived", "no_show")),
                                           ClinicSession.day >= start, ClinicSession.day <= end)
                                    .group_by(Booking.session_id)).all())
    months: dict[str, MonthFigures] = {}
    for sid, day, capacity, reserved in sessions:
        key = f"{day:%Y-%m}"
        m = months.setdefault(key, MonthFigures(key, 0, 0, 0, 0))
        m.offered += capacity
        m.reserved += reserved
        m.reserved_booked += booked.get(sid, 0)
        m.member_booked += member_booked.get(sid, 0)
    return [months[k] for k in sorted(months)]


# ---------------------------------------------------------------------------------------- beds


def create_ward(db: Session, subject: Subject, data: WardIn) -> Ward:
    _require_scheduler(subject, data.institution_id)
    share = data.reserve_share
    if data.reserve_alliance_id is not None:
        m = _current_membership(db, data.reserve_alliance_id, data.institution_id)
        if m is None or m.role != MemberRole.lead:
            raise InvalidInput(fields={"reserve_alliance_id": "只有牵头医院向下级成员预留床位"})
        alliance = db.get(Alliance, data.reserve_alliance_id)
        share = share if share is not None else (alliance.bed_reserve_share if alliance else 0.25)
    if data.occupied > data.beds_total:
        raise InvalidInput(fields={"occupied": "在院人数不能超过床位数"})
    if db.scalar(select(Ward.id).where(Ward.institution_id == data.institution_id, Ward.name == data.name)):
        raise InvalidInput(fields={"name": "病区名称已存在"})
    reserved = reserved_count(data.beds_total, share) if data.reserve_alliance_id else 0
    reserved = min(reserved, data.beds_total - data.occupied)
    ward = Ward(institution_id=data.institution_id, department_id=data.department_id, name=data.name,
                beds_total=data.beds_total, occupied=data.occupied, reserved_beds=reserved,
                reserve_alliance_id=data.reserve_alliance_id)
    db.add(ward)
    db.flush()
    audit.record(db, subject, "create", "ward", ward.id, detail=data.model_dump(mode="json"))
    return ward


def set_occupied(db: Session, subject: Subject, ward_id: int, occupied: int) -> Ward:
    ward = db.get(Ward, ward_id)
    if ward is None:
        raise NotFound()
    _require_scheduler(subject, ward.institution_id)
    if occupied < 0 or occupied + ward.reserved_held + ward.public_held > ward.beds_total:
        raise InvalidInput(fields={"occupied": "在院人数加已预留床位不能超过床位数"})
    before = ward.occupied
    ward.occupied = occupied
    audit.record(db, subject, "update", "ward", ward.id, detail={"occupied": {"from": before, "to": occupied}})
    return ward


def bed_pools_for(db: Session, institution_id: int | None, ward: Ward) -> list[str]:
    if institution_id is None:
        return []
    if not share_alliance(db, institution_id, ward.institution_id):
        return []
    if _may_use_reserve(db, institution_id, ward.reserve_alliance_id, ward.institution_id):
        return [Pool.reserved, Pool.public]
    return [Pool.public]


def reserve_bed(db: Session, subject: Subject, data: BedReservationIn, *,
                pool_institution_id: int | None = None) -> BedReservation:
    """`pool_institution_id`: as in `book` (a referral's origin when the receiving site reserves)."""
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden()
    ward = db.get(Ward, data.ward_id)
    if ward is None or not ward.active:
        raise NotFound("病区不存在")
    policy.require_patient(db, subject, data.patient_id, resource_type="bed_reservation_patient")
    pools = bed_pools_for(db, pool_institution_id or subject.acting_institution_id, ward)
    if not pools:
        raise Forbidden("本机构与该院不在同一医联体，不能预留床位")
    held = None
    for pool in pools:
        if pool == Pool.reserved:
            stmt = (update(Ward).where(Ward.id == ward.id, Ward.reserved_held < Ward.reserved_beds,
                                       Ward.occupied + Ward.reserved_held + Ward.public_held < Ward.beds_total)
                    .values(reserved_held=Ward.reserved_held + 1).returning(Ward.id))
        else:
            stmt = (update(Ward).where(Ward.id == ward.id,
                                       Ward.occupied + Ward.public_held + Ward.reserved_beds < Ward.beds_total)
                    .values(public_held=Ward.public_held + 1).returning(Ward.id))
        if db.execute(stmt.execution_options(synchronize_session=False)).first() is not None:
            held = pool
            break
    if held is None:
        raise BedsFull()
    db.refresh(ward)
    assert subject.acting_institution_id is not None
    res = BedReservation(ward_id=ward.id, patient_id=data.patient_id, pool=held,
                         requested_by_institution_id=subject.acting_institution_id,
                         requested_by_user_id=subject.user_id, note=data.note, referral_id=data.referral_id,
                         expires_at=clock.now() + timedelta(hours=data.hours))
    db.add(res)
    db.flush()
    if ward.institution_id != subject.acting_institution_id:
        policy.grant_access(db, subject, patient_id=data.patient_id, institution_id=ward.institution_id,
                            kind=GrantKind.booking, reason="预留床位", source=("bed_reservation", res.id),
                            expires_in=timedelta(hours=data.hours) + timedelta(days=30))
    audit.record(db, subject, "create", "bed_reservation", res.id, patient_id=data.patient_id,
                 detail={"ward_id": ward.id, "pool": held})
    return res


def _end_reservation(db: Session, res: BedReservation, status: str) -> None:
    col = Ward.reserved_held if res.pool == Pool.reserved else Ward.public_held
    values: dict[Any, Any] = {col: col - 1}
    if status == "admitted":
        values[Ward.occupied] = Ward.occupied + 1
    db.execute(update(Ward).where(Ward.id == res.ward_id).values(values).execution_options(
        synchronize_session=False))
    res.status = status
    res.ended_at = clock.now()


def admit_reservation(db: Session, subject: Subject, reservation_id: int) -> BedReservation:
    res = db.get(BedReservation, reservation_id)
    ward = db.get(Ward, res.ward_id) if res else None
    if res is None or ward is None:
        raise NotFound()
    if not _is_staff_of(subject, ward.institution_id, "doctor", "nurse", "coordinator", "institution_admin"):
        raise NotFound()
    if res.status != "held":
        raise Conflict("该床位预留已结束")
    _end_reservation(db, res, "admitted")
    audit.record(db, subject, "admit", "bed_reservation", res.id, patient_id=res.patient_id)
    return res


def release_reservation(db: Session, subject: Subject, reservation_id: int) -> BedReservation:
    res = db.get(BedReservation, reservation_id)
    ward = db.get(Ward, res.ward_id) if res else None
    if res is None or ward is None:
        raise NotFound()
    if subject.acting_institution_id not in (ward.institution_id, res.requested_by_institution_id):
        raise NotFound()
    if res.status != "held":
        raise Conflict("该床位预留已结束")
    _end_reservation(db, res, "released")
    policy.end_grants(db, subject, "bed_reservation", res.id)
    audit.record(db, subject, "release", "bed_reservation", res.id, patient_id=res.patient_id)
    return res


def expire_reservations(db: Session, now: datetime | None = None) -> int:
    now = now or clock.now()
    expired = list(db.scalars(select(BedReservation).where(BedReservation.status == "held",
                                                           BedReservation.expires_at <= now).limit(500)))
    for res in expired:
        _end_reservation(db, res, "expired")
        notify(db, title="床位预留已过期", institution_id=res.requested_by_institution_id,
               link="/scheduling/beds", kind="booking", dedupe_key=f"bed-expired-{res.id}")
        audit.record(db, None, "expire", "bed_reservation", res.id, patient_id=res.patient_id, channel="job")
    return len(expired)


def wards_view(db: Session, institution_id: int | None = None) -> list[tuple[Ward, str]]:
    stmt = select(Ward, Institution.name).join(Institution, Institution.id == Ward.institution_id).where(
        Ward.active.is_(True)).order_by(Institution.name, Ward.name)
    if institution_id:
        stmt = stmt.where(Ward.institution_id == institution_id)
    return list(db.execute(stmt))


def reservations_of(db: Session, subject: Subject, status: str = "held") -> list[tuple[BedReservation, Ward, Patient]]:
    inst = subject.acting_institution_id
    stmt = (select(BedReservation, Ward, Patient).join(Ward, Ward.id == BedReservation.ward_id)
            .join(Patient, Patient.id == BedReservation.patient_id)
            .where(or_(Ward.institution_id == inst, BedReservation.requested_by_institution_id == inst))
            .order_by(BedReservation.expires_at))
    if status:
        stmt = stmt.where(BedReservation.status == status)
    return list(db.execute(stmt.limit(300)))


def counts_by_status(rows: list[tuple[Booking, ClinicSession, Patient]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for b, _, _ in rows:
        out[b.status] += 1
    return dict(out)
