"""Booking: what a site may book (availability, pools), book/cancel/reschedule, arrival and no-show,
the booking slips and lists, releasing unused reserves.

Concurrency: a booking claims one slot row with a conditional UPDATE … RETURNING; the
booking row is inserted only if that UPDATE returned a row, in the same transaction. On
PostgreSQL "any free slot" uses `FOR UPDATE SKIP LOCKED` so concurrent bookers take
different rows instead of queueing on one; on SQLite every transaction is BEGIN IMMEDIATE
(one writer). Partial unique indexes back this up: one active booking per slot, one per
patient per session.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.models.patient import Patient
from yilianti.models.scheduling import (
    Booking,
    BookingStatus,
    ClinicSession,
    Pool,
    Schedule,
    SessionStatus,
    Slot,
)
from yilianti.notifications.service import notify
from yilianti.scheduling import repository as repo
from yilianti.scheduling.rules import (
    DuplicateBooking,
    SessionClosed,
    SlotFull,
    _may_use_reserve,
    arrival_reason,
    share_alliance,
)
from yilianti.scheduling.schedules import get_session
from yilianti.scheduling.schemas import (
    BookingIn,
)


@dataclass
class Availability:
    session: ClinicSession
    schedule: Schedule
    free_reserved: int
    free_public: int
    booked: int
    pools: list[str]  # pools the asking institution may book from
    reason: str | None  # why it may not book, if pools is empty


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


def availability(db: Session, subject: Subject, session_id: int) -> Availability:
    session = get_session(db, session_id)
    counts, booked = repo.free_counts(db, session_id)
    pools, reason = pools_for(db, subject.acting_institution_id, session)
    return Availability(session, session.schedule, counts.get(Pool.reserved, 0), counts.get(Pool.public, 0),
                        booked, pools, reason)


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


def book(db: Session, subject: Subject, data: BookingIn, *, rescheduled_from: int | None = None,
         pool_institution_id: int | None = None) -> Booking:
    """`pool_institution_id`: whose pools apply when booking for another site (a referral's origin,
    booked by the receiving site from inside the referral); the caller has checked that relation."""
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden("只有医生、护士或转诊协调员可以预约")
    session = repo.session_with_schedule(db, data.session_id)
    if session is None:
        raise NotFound("出诊时段不存在")
    if kit.get(db, Patient, data.patient_id) is None:
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
    if repo.active_booking_id(db, session.id, data.patient_id) is not None:
        raise DuplicateBooking()
    claimed = None
    for pool in pools:
        claimed = repo.claim_slot(db, session.id, pool, data.slot_id)
        if claimed is not None:
            break
    if claimed is None:
        if data.slot_id is not None:
            slot = kit.get(db, Slot, data.slot_id)
            if slot is None or slot.session_id != session.id:
                raise NotFound("该号不存在")
            if slot.pool not in pools and not slot.booked:
                raise Forbidden("本机构不能使用该号源池")
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
    row = repo.booking_with_site(db, booking_id)
    if row is None:
        raise NotFound()
    booking, site_id = row
    inst = subject.acting_institution_id
    allowed = {site_id} if site_only else {site_id, booking.booked_by_institution_id}
    if inst not in allowed:  # no exception for the system admin: a booking names its patient
        if inst in {site_id, booking.booked_by_institution_id}:
            raise Forbidden("只有出诊机构可以登记到诊或爽约")
        raise NotFound()
    return booking


def cancel(db: Session, subject: Subject, booking_id: int, reason: str = "") -> Booking:
    booking = _booking_for_change(db, subject, booking_id)
    if booking.status != BookingStatus.booked:
        raise Conflict("只有待就诊的预约可以取消")
    session = kit.get(db, ClinicSession, booking.session_id)
    assert session is not None
    booking.status = BookingStatus.cancelled
    booking.cancelled_at = clock.now()
    booking.cancel_reason = reason.strip() or None
    db.flush()
    # free the slot; after the reserve returned to the public pool, a freed reserved seat goes public too
    repo.free_slot(db, booking.slot_id, to_public=session.reserve_released_at is not None)
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


def mark_arrived(db: Session, subject: Subject, booking_id: int, reason: str | None = None) -> Booking:
    """The site records the patient's arrival; before the booked day only with a reason (rules.arrival_reason)."""
    booking = _booking_for_change(db, subject, booking_id, site_only=True)
    if booking.status != BookingStatus.booked:
        raise Conflict("该预约当前状态不能登记到诊")
    early = arrival_reason(db, booking.id, reason)
    booking.status = BookingStatus.arrived
    booking.arrived_at = clock.now()
    audit.record(db, subject, "arrive", "booking", booking.id, patient_id=booking.patient_id, reason=early,
                 detail={"early": True} if early else None)
    notify(db, title="患者已到诊", body=f"预约号 {booking.number}", institution_id=booking.booked_by_institution_id,
           link=f"/bookings/{booking.id}", kind="booking")
    return booking


def mark_no_show(db: Session, subject: Subject, booking_id: int) -> Booking:
    booking = _booking_for_change(db, subject, booking_id, site_only=True)
    if booking.status != BookingStatus.booked:
        raise Conflict("该预约当前状态不能登记爽约")
    session = kit.get(db, ClinicSession, booking.session_id)
    assert session is not None
    if clock.as_utc(session.starts_at) > clock.now():
        raise Conflict("出诊尚未开始，不能登记爽约")
    booking.status = BookingStatus.no_show
    booking.no_show_at = clock.now()
    audit.record(db, subject, "no_show", "booking", booking.id, patient_id=booking.patient_id)
    notify(db, title="患者未按预约就诊", body=f"预约号 {booking.number}，请联系患者",
           institution_id=booking.booked_by_institution_id, link=f"/bookings/{booking.id}", kind="booking")
    return booking


def release_reserves(db: Session, now: datetime | None = None) -> int:
    """At the cut-off, unused reserved slots return to the public pool. Returns slots released."""
    now = now or clock.now()
    total = 0
    for session in repo.sessions_to_release(db, now):
        released = repo.release_reserved(db, session.id)
        session.reserve_released_at = now
        session.reserve_released_count = released
        total += released
        audit.record(db, None, "release_reserve", "clinic_session", session.id, channel="job",
                     detail={"released": released})
    return total


# ---------------------------------------------------------------------------------------- lists


def _audit_search(db: Session, subject: Subject, made_here: bool, rows: list[Any]) -> None:
    if rows:
        audit.record(db, subject, "search", "booking", None,
                     detail={"made_here": made_here, "patients": sorted({p.id for _, _, p in rows})[:200]})


def bookings_of_site(db: Session, subject: Subject, *, made_here: bool = True, day: date | None = None,
                     status: str | None = None, limit: int | None = None) -> list[tuple[Booking, ClinicSession, Patient]]:
    """Bookings made by the acting institution (made_here) or to be received by it."""
    rows = repo.site_bookings(db, subject.acting_institution_id, made_here=made_here, day=day, status=status,
                              limit=limit)
    _audit_search(db, subject, made_here, rows)
    return rows


def count_site_bookings(db: Session, subject: Subject, *, made_here: bool = True, day: date | None = None,
                        status: str | None = None) -> int:
    """How many rows `bookings_page` shows for these filters (the workbench's count; not a search: not audited)."""
    return repo.count_site_bookings(db, subject.acting_institution_id, made_here=made_here, day=day, status=status)


def bookings_page(db: Session, subject: Subject, lp: ListParams, *, made_here: bool = True, day: date | None = None,
                  reads: Session | None = None) -> kit.Page[tuple[Booking, ClinicSession, Patient]]:
    """One page of the site's bookings under the list's filters, read from `reads` (the read replica) when given
    (audited on the primary as a search of the rows shown)."""
    result = repo.site_bookings_page(reads or db, subject.acting_institution_id, lp, made_here=made_here, day=day)
    _audit_search(db, subject, made_here, result.items)
    return result


def site_booking_counts(db: Session, subject: Subject, lp: ListParams, *, made_here: bool = True,
                        day: date | None = None) -> dict[str, int]:
    """Bookings per status under the list's other filters (the figures above the list)."""
    return repo.site_booking_counts(db, subject.acting_institution_id, lp, made_here=made_here, day=day)


def get_booking(db: Session, subject: Subject, booking_id: int) -> tuple[Booking, ClinicSession, Patient, Slot]:
    booking = _booking_for_change(db, subject, booking_id)
    session = get_session(db, booking.session_id)
    patient = kit.get(db, Patient, booking.patient_id)
    slot = kit.get(db, Slot, booking.slot_id)
    assert patient is not None and slot is not None
    audit.record(db, subject, "read", "booking", booking.id, patient_id=patient.id, basis="booking")
    return booking, session, patient, slot


def counts_by_status(rows: list[tuple[Booking, ClinicSession, Patient]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for b, _, _ in rows:
        out[b.status] += 1
    return dict(out)
