"""The scheduling rules every part shares: its conflicts, who may schedule, reserved shares, and the
clauses (built from their arguments) that the ORM queries and the booking statement (fastpath.BOOK) both use."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from yilianti.alliance.repository import current_on
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, InvalidInput
from yilianti.kit import clock
from yilianti.models.alliance import (
    GRASSROOTS_KINDS,
    Alliance,
    Institution,
    MemberRole,
    Membership,
)
from yilianti.models.scheduling import (
    ACTIVE_BOOKING,
    Booking,
    ClinicSession,
)


class SlotFull(Conflict):
    code, default_message = "slot_full", "该时段已约满，可加入候补登记"


class DuplicateBooking(Conflict):
    code, default_message = "duplicate_booking", "该患者在此出诊时段已有预约"


class SessionClosed(Conflict):
    code, default_message = "session_not_bookable", "该出诊时段已停诊或已开始，不能预约"


class BedsFull(Conflict):
    code, default_message = "beds_full", "该病区暂无可预留床位"


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


def _may_use_reserve(db: Session, institution_id: int, alliance_id: int | None, site_id: int) -> bool:
    """The lead's reserve is for the members below it: grassroots only, or every member (a setting)."""
    if alliance_id is None or institution_id == site_id:
        return False
    return bool(db.scalar(select(may_use_reserve(institution_id, alliance_id, site_id, clock.today_local()))))


# ------------------------------------------------------------------------------ arrival before the booked day

EARLY_ARRIVAL = "预约就诊日（{day}）尚未到：提前登记到诊须填写原因"


def booked_day_reached(booking_id: Any, today: Any) -> ColumnElement[bool]:
    """Arrival on the booking `booking_id` (none: no booking) may be recorded without a reason: its session's
    day is `today` or past. The one clause of the rule: `arrival_reason` evaluates it for the booking and
    referral arrival steps, and the referral fast path (referral/fastpath.py) compiles it into its UPDATE, so
    an early arrival there goes to the route, which asks for the reason."""
    return ~exists().where(Booking.id == booking_id, ClinicSession.id == Booking.session_id,
                           ClinicSession.day > today)


def arrival_reason(db: Session, booking_id: int | None, reason: str | None, *,
                   field: str = "arrival_reason") -> str | None:
    """Arrival before the booked day needs a reason (a patient who came early, a day moved by phone): the
    reason given (stripped) when the day is still ahead, None on or after it; 422 on `field` without one."""
    if booking_id is None or db.scalar(select(booked_day_reached(booking_id, clock.today_local()))):
        return None
    text = (reason or "").strip()
    if len(text) < 2:
        day = db.scalar(select(ClinicSession.day).join(Booking, Booking.session_id == ClinicSession.id)
                        .where(Booking.id == booking_id))
        raise InvalidInput(fields={field: EARLY_ARRIVAL}, day=day.isoformat() if day else "")
    return text[:200]
