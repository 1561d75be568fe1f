"""Scheduling JSON API: sessions and availability per pool, bookings, wait-list, schedules, wards, sinking ratio.

Every route calls the scheduling rules (schedules, booking, waitlist, beds, sinking); errors follow CONTRACTS.md (`session_not_bookable`,
`slot_full`, `duplicate_booking` answer 409; unknown or invisible resources 404; a site of
another alliance 403; malformed bodies 422) and change nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Body, Query, Request, status
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical, CurrentSubject, csrf_protect, resolve_subject
from yilianti.exceptions import Forbidden, InvalidInput, Unauthenticated
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.schemas import Day, Id
from yilianti.models.alliance import Alliance
from yilianti.models.scheduling import (
    BedReservation,
    BookingRequest,
    ClinicSession,
    Schedule,
    ScheduleTemplate,
    Ward,
)
from yilianti.scheduling import beds, fastpath, repository, schedules
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling import sinking as sinking_rules
from yilianti.scheduling import waitlist as waitlist_rules
from yilianti.scheduling.schemas import (
    ArriveIn,
    AvailabilityOut,
    BedReservationIn,
    BedReservationOut,
    BookingIn,
    BookingOut,
    BookingRequestOut,
    CancelIn,
    GeneratedOut,
    GenerateIn,
    MonthOut,
    RescheduleIn,
    ScheduleIn,
    ScheduleOut,
    SessionCancelledOut,
    SessionOut,
    SlotOut,
    TemplateIn,
    TemplateOut,
    WaitRequestIn,
    WardIn,
    WardOut,
)
from yilianti.scheduling.schemas import booking_out as _booking_out

router = APIRouter(prefix="/api/v1", tags=["scheduling"])

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "forbidden (e.g. the site is not in an alliance with the session's hospital)"},
    404: {"description": "unknown or not visible (session, patient, booking)"},
    409: {"description": "state conflict: session_not_bookable, slot_full, duplicate_booking"},
    422: {"description": "malformed input, with field errors"},
}


# ------------------------------------------------------------------------------------------ helpers


def _session_out(s: ClinicSession, fr: int, fp: int) -> dict[str, Any]:
    sch = s.schedule
    return {"id": s.id, "schedule_id": s.schedule_id, "schedule_name": sch.name, "kind": sch.kind,
            "institution_id": sch.institution_id, "institution_name": sch.institution.name,
            "practitioner_name": sch.practitioner.name if sch.practitioner else None,
            "practitioner_title": sch.practitioner.title if sch.practitioner else None,
            "department": sch.department.name if sch.department else None, "specialty": sch.specialty,
            "location": sch.location, "day": s.day, "starts_at": clock.as_utc(s.starts_at),
            "ends_at": clock.as_utc(s.ends_at), "status": s.status, "capacity": s.capacity,
            "reserved_capacity": s.reserved_capacity, "free_reserved": fr, "free_public": fp,
            "reserve_cutoff_at": clock.as_utc(s.reserve_cutoff_at) if s.reserve_cutoff_at else None,
            "reserve_released_at": clock.as_utc(s.reserve_released_at) if s.reserve_released_at else None,
            "reserve_released_count": s.reserve_released_count}


def _utc(value: datetime | None) -> datetime | None:
    return clock.as_utc(value) if value else None


def _read_booking(db: DB, subject: Any, booking_id: Id) -> dict[str, Any]:
    booking, session, _, slot = booking_rules.get_booking(db, subject, booking_id)
    return _booking_out(booking, session, slot, session.schedule.institution_id)


def _request_out(r: BookingRequest) -> dict[str, Any]:
    return {"id": r.id, "patient_id": r.patient_id, "requested_by_institution_id": r.requested_by_institution_id,
            "target_institution_id": r.target_institution_id, "schedule_id": r.schedule_id,
            "specialty": r.specialty, "earliest": r.earliest, "latest": r.latest,
            "contact_by": clock.as_utc(r.contact_by), "overdue": clock.as_utc(r.contact_by) <= clock.now(),
            "note": r.note, "status": r.status, "booking_id": r.booking_id, "closed_reason": r.closed_reason}


def _ward_out(w: Ward) -> dict[str, Any]:
    free_reserved = max(min(w.reserved_beds - w.reserved_held,
                            w.beds_total - w.occupied - w.reserved_held - w.public_held), 0)
    free_public = max(w.beds_total - w.occupied - w.public_held - w.reserved_beds, 0)
    return {"id": w.id, "institution_id": w.institution_id, "department_id": w.department_id, "name": w.name,
            "beds_total": w.beds_total, "occupied": w.occupied, "reserved_beds": w.reserved_beds,
            "reserved_held": w.reserved_held, "public_held": w.public_held, "free_reserved": free_reserved,
            "free_public": free_public, "reserve_alliance_id": w.reserve_alliance_id}


def _reservation_out(r: BedReservation) -> dict[str, Any]:
    return {"id": r.id, "ward_id": r.ward_id, "patient_id": r.patient_id, "pool": r.pool, "status": r.status,
            "requested_by_institution_id": r.requested_by_institution_id, "expires_at": clock.as_utc(r.expires_at),
            "ended_at": _utc(r.ended_at), "note": r.note}


# ------------------------------------------------------------------------------------------ sessions


@router.get("/sessions", response_model=list[SessionOut])
def list_sessions(db: DB, subject: CurrentSubject, institution_id: Id | None = None,
                  schedule_id: Id | None = None, q: str = Query("", description="specialty, expert or department"),
                  start: Day | None = None, end: Day | None = None,
                  limit: int = Query(100, ge=1, le=500)) -> list[dict[str, Any]]:
    """Upcoming sessions at institutions sharing an alliance with the acting one, with free slots per pool."""
    partners = [p.id for p in repository.partner_institutions(db, subject.acting_institution_id)]
    if subject.is_system_admin and institution_id is not None:
        partners = [institution_id]
    ids = [institution_id] if institution_id is not None and institution_id in partners else partners
    if institution_id is not None and institution_id not in partners:
        ids = []
    d_start = start or clock.today_local()
    d_end = end or d_start + timedelta(days=13)
    if d_end < d_start or (d_end - d_start).days > 120:
        raise InvalidInput(fields={"end": "日期范围应为0–120天"})
    rows = repository.search_sessions(db, institution_ids=ids, q=q, start=d_start, end=d_end, schedule_id=schedule_id,
                                      limit=limit)
    return [_session_out(s, fr, fp) for s, fr, fp in rows]


@router.get("/sessions/{session_id}/availability", response_model=AvailabilityOut, responses=ERRORS)
def session_availability(session_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    """Free slots per pool before booking, and which pools the acting institution may use."""
    av = booking_rules.availability(db, subject, session_id)
    s = av.session
    return {"session_id": s.id, "status": s.status,
            "bookable": s.status == "open" and clock.as_utc(s.starts_at) > clock.now(),
            "capacity": s.capacity, "reserved_capacity": s.reserved_capacity, "free_reserved": av.free_reserved,
            "free_public": av.free_public, "booked": av.booked, "pools": av.pools, "reason": av.reason,
            "reserve_cutoff_at": _utc(s.reserve_cutoff_at), "reserve_released_at": _utc(s.reserve_released_at),
            "reserve_released_count": s.reserve_released_count}


@router.get("/sessions/{session_id}/slots", response_model=list[SlotOut], responses=ERRORS)
def session_slots(session_id: Id, db: DB, subject: CurrentSubject,
                  pool: Literal["reserved", "public"] | None = None) -> list[Any]:
    """Free slots of the pools the acting institution may use (timed slots carry a time; others a number)."""
    av = booking_rules.availability(db, subject, session_id)
    pools = [p for p in av.pools if pool is None or p == pool]
    if not pools or av.session.status != "open":
        return []
    return [{"id": s.id, "seq": s.seq, "starts_at": _utc(s.starts_at), "pool": s.pool}
            for s in repository.free_slots(db, session_id, pools)]


@router.post("/sessions/{session_id}/cancel", response_model=SessionCancelledOut, responses=ERRORS)
def cancel_session(session_id: Id, db: DB, subject: CurrentSubject, body: CancelIn = Body()) -> dict[str, Any]:
    """Stop a session (停诊): every active booking is cancelled and its booking site notified."""
    n = schedules.cancel_session(db, subject, session_id, body.reason)
    return {"session_id": session_id, "bookings_cancelled": n}


# ------------------------------------------------------------------------------------------ bookings


@router.post("/bookings", status_code=status.HTTP_201_CREATED, response_model=BookingOut, responses=ERRORS)
async def create_booking(request: Request, body: BookingIn = Body()) -> dict[str, Any]:
    """Book a slot for a patient the acting institution may see (reserved pool first when eligible).

    On PostgreSQL this is the platform's hot path (scheduling/fastpath.py: one statement);
    elsewhere, and whenever that statement books nothing, `booking_rules.book` decides.
    """
    if fastpath.enabled():
        return await fastpath.book(request, body)
    await csrf_protect(request)
    result: dict[str, Any] = await fastpath._sync(_book_sync, request, body)
    return result


def _book_sync(db: Session, request: Request, body: BookingIn) -> dict[str, Any]:
    subject = resolve_subject(db, request)
    if subject is None:
        raise Unauthenticated()
    if not subject.is_clinical:
        raise Forbidden("此功能仅限临床人员（医生、护士、诊断医师、转诊协调员）")
    booking = booking_rules.book(db, subject, body)
    return _read_booking(db, subject, booking.id)


@router.get("/bookings", response_model=list[BookingOut])
def list_bookings(db: DB, subject: CurrentSubject,
                  scope: Literal["mine", "incoming"] = Query("mine", description="made here, or to be received here"),
                  day: Day | None = None,
                  status_: Literal["booked", "arrived", "no_show", "cancelled"] | None = Query(None, alias="status"),
                  limit: int = Query(200, ge=1, le=500)) -> list[dict[str, Any]]:
    if subject.acting_institution_id is None:
        raise Forbidden("请先选择执业机构")
    rows = booking_rules.bookings_of_site(db, subject, made_here=scope == "mine", day=day, status=status_, limit=limit)
    slots = repository.slots_by_id(db, [bk.slot_id for bk, _, _ in rows])
    return [_booking_out(bk, s, slots[bk.slot_id], s.schedule.institution_id) for bk, s, _ in rows]


@router.get("/bookings/{booking_id}", response_model=BookingOut, responses=ERRORS)
def read_booking(booking_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    return _read_booking(db, subject, booking_id)


@router.post("/bookings/{booking_id}/cancel", response_model=BookingOut, responses=ERRORS)
def cancel_booking(booking_id: Id, db: DB, subject: CurrentSubject, body: CancelIn = Body(CancelIn())) -> dict[str, Any]:
    """Cancel: the slot is free again."""
    booking_rules.cancel(db, subject, booking_id, body.reason)
    return _read_booking(db, subject, booking_id)


@router.post("/bookings/{booking_id}/reschedule", response_model=BookingOut, status_code=201, responses=ERRORS)
def reschedule_booking(booking_id: Id, db: DB, subject: Clinical, body: RescheduleIn = Body()) -> dict[str, Any]:
    """Move to another session: the old booking is cancelled and a new one returned."""
    booking = booking_rules.reschedule(db, subject, booking_id, body.session_id, body.slot_id)
    return _read_booking(db, subject, booking.id)


@router.post("/bookings/{booking_id}/arrive", response_model=BookingOut, responses=ERRORS)
def arrive(booking_id: Id, db: DB, subject: CurrentSubject, body: ArriveIn = Body(ArriveIn())) -> dict[str, Any]:
    """Record arrival (到诊回传); only the session's site, on or after the booked day — before it only with an
    `arrival_reason` (422 on that field without one)."""
    booking_rules.mark_arrived(db, subject, booking_id, body.arrival_reason)
    return _read_booking(db, subject, booking_id)


@router.post("/bookings/{booking_id}/no-show", response_model=BookingOut, responses=ERRORS)
def no_show(booking_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    """Record a no-show; only the session's site, once the session has started."""
    booking_rules.mark_no_show(db, subject, booking_id)
    return _read_booking(db, subject, booking_id)


# ------------------------------------------------------------------------------------------ wait-list


@router.post("/booking-requests", status_code=status.HTTP_201_CREATED, response_model=BookingRequestOut,
             responses=ERRORS)
def create_request(db: DB, subject: Clinical, body: WaitRequestIn = Body()) -> dict[str, Any]:
    """Nothing fits: the request waits on the target's worklist with a contact-by deadline."""
    return _request_out(waitlist_rules.request_wait(db, subject, body))


@router.get("/booking-requests", response_model=list[BookingRequestOut])
def list_requests(db: DB, subject: Clinical,
                  direction: Literal["incoming", "outgoing"] = "incoming",
                  status_: Literal["waiting", "booked", "closed", ""] = Query("waiting", alias="status"),
                  ) -> list[dict[str, Any]]:
    rows = waitlist_rules.waitlist(db, subject, incoming=direction == "incoming", status=status_)
    return [_request_out(r) for r, _ in rows]


# ------------------------------------------------------------------------------------------ schedules


@router.post("/schedules", status_code=status.HTTP_201_CREATED, response_model=ScheduleOut, responses=ERRORS)
def create_schedule(db: DB, subject: CurrentSubject, body: ScheduleIn = Body()) -> Schedule:
    return schedules.create_schedule(db, subject, body)


@router.post("/schedules/{schedule_id}/templates", status_code=status.HTTP_201_CREATED, response_model=TemplateOut,
             responses=ERRORS)
def add_template(schedule_id: Id, db: DB, subject: CurrentSubject, body: TemplateIn = Body()) -> ScheduleTemplate:
    return schedules.add_template(db, subject, schedule_id, body)


@router.post("/schedules/{schedule_id}/generate", response_model=GeneratedOut, responses=ERRORS)
def generate(schedule_id: Id, db: DB, subject: CurrentSubject, body: GenerateIn = Body()) -> dict[str, int]:
    """Templates → dated sessions → slots for days in [start, end]; existing sessions are kept."""
    return {"created": schedules.generate_sessions(db, subject, schedule_id, body.start, body.end)}


# ------------------------------------------------------------------------------------------ beds


@router.get("/wards", response_model=list[WardOut])
def list_wards(db: DB, subject: CurrentSubject, institution_id: Id | None = None) -> list[dict[str, Any]]:
    """Wards of institutions sharing an alliance with the acting one (or of one of them)."""
    partners = {p.id for p in repository.partner_institutions(db, subject.acting_institution_id)}
    if institution_id is not None and institution_id not in partners and not subject.is_system_admin:
        return []
    return [_ward_out(w) for w, _ in repository.wards_view(db, institution_id)
            if subject.is_system_admin or w.institution_id in partners]


@router.post("/wards", status_code=status.HTTP_201_CREATED, response_model=WardOut, responses=ERRORS)
def create_ward(db: DB, subject: CurrentSubject, body: WardIn = Body()) -> dict[str, Any]:
    return _ward_out(beds.create_ward(db, subject, body))


@router.post("/bed-reservations", status_code=status.HTTP_201_CREATED, response_model=BedReservationOut,
             responses=ERRORS)
def reserve_bed(db: DB, subject: Clinical, body: BedReservationIn = Body()) -> dict[str, Any]:
    return _reservation_out(beds.reserve_bed(db, subject, body))


@router.post("/bed-reservations/{reservation_id}/admit", response_model=BedReservationOut, responses=ERRORS)
def admit(reservation_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    return _reservation_out(beds.admit_reservation(db, subject, reservation_id))


@router.post("/bed-reservations/{reservation_id}/release", response_model=BedReservationOut, responses=ERRORS)
def release(reservation_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    return _reservation_out(beds.release_reservation(db, subject, reservation_id))


# ------------------------------------------------------------------------------------------ sinking ratio


@router.get("/alliances/{alliance_id}/sinking", response_model=list[MonthOut], responses=ERRORS)
def sinking(alliance_id: Id, db: DB, subject: CurrentSubject, start: Day | None = None,
            end: Day | None = None) -> list[dict[str, Any]]:
    """号源下沉比例 per month: reserved ÷ offered, and reserved booked ÷ reserved."""
    kit.get_or_404(db, Alliance, alliance_id)
    if not repository.can_see_alliance_figures(db, subject, alliance_id):
        raise Forbidden("只有该医联体的成员或管理员可以查看")
    today = clock.today_local()
    d_start = start or (today.replace(day=1) - timedelta(days=150)).replace(day=1)
    d_end = end or today + timedelta(days=60)
    return [{"month": m.month, "offered": m.offered, "reserved": m.reserved, "sinking_ratio": m.sinking_ratio,
             "reserved_booked": m.reserved_booked, "reserve_use": m.reserve_use, "member_booked": m.member_booked}
            for m in sinking_rules.sinking_by_month(db, alliance_id, d_start, d_end)]
