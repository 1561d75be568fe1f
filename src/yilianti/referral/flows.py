"""Cross-domain work of a referral (ARCHITECTURE.md: `flows.py` for work that crosses domains).

From inside an accepted referral, either side (states.MOVES allows both for accepted → scheduled)
books a slot of the receiving institution — from the reserved pool released to the referral's
ORIGIN, even when the receiving site books — or reserves a bed in one of its wards, and the
referral moves to `scheduled`, all in the caller's one unit of work:

1. lock the referral row and check the move (409 when it can no longer be scheduled),
2. book through `scheduling.booking.book` / `reserve_bed` (their own 409s: slot or bed gone),
3. `service.schedule` → `transition` (history row, deadline, audit, notification).

Any error raises before the unit of work commits, so a raced slot leaves the referral, the
slots and the history exactly as they were (the request dependency or the page's savepoint
rolls back).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, InvalidInput, NotFound
from yilianti.kit import repository as kit
from yilianti.models.referral import Referral
from yilianti.models.scheduling import ClinicSession, Schedule, Ward
from yilianti.referral import service
from yilianti.referral.states import Status
from yilianti.scheduling import beds, rules
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling.schemas import BedReservationIn, BookingIn

SLOT_TAKEN = "referral_slot_taken"
BEDS_TAKEN = "referral_bed_taken"


def book_slot(db: Session, subject: Subject, referral_id: int, session_id: int, *, slot_id: int | None = None,
              pool: str | None = None, expected_status: str | None = None) -> Referral:
    """Book a slot of the receiving institution for the referral and move it to scheduled.

    `pool` None: the reserve released to the origin when it may use it, else the public pool."""
    ref, _ = service.lock_for_move(db, subject, referral_id, Status.scheduled, expected_status=expected_status)
    session = kit.get(db, ClinicSession, session_id)
    schedule = kit.get(db, Schedule, session.schedule_id) if session is not None else None
    if session is None or schedule is None:
        raise InvalidInput(fields={"session_id": "出诊时段不存在"})
    if schedule.institution_id != ref.to_institution_id:
        raise InvalidInput(fields={"session_id": "只能预约接收机构的号源"})
    try:
        booking = booking_rules.book(
            db, subject, BookingIn(session_id=session_id, patient_id=ref.patient_id, slot_id=slot_id,
                                   pool=pool,  # type: ignore[arg-type]
                                   referral_id=ref.id, note=f"转诊单 #{ref.id}"),
            pool_institution_id=ref.from_institution_id)
    except rules.SlotFull:
        raise Conflict("该号源刚刚已被预约，转诊单未改变，请选择其他号源", code=SLOT_TAKEN) from None
    except NotFound:
        raise InvalidInput(fields={"session_id": "出诊时段不存在"}) from None
    return service.schedule(db, subject, ref.id, booking_id=booking.id, expected_status=Status.accepted)


def reserve_bed(db: Session, subject: Subject, referral_id: int, ward_id: int, *, hours: int = 48,
                expected_status: str | None = None) -> Referral:
    """Reserve a bed in a ward of the receiving institution and move the referral to scheduled."""
    ref, _ = service.lock_for_move(db, subject, referral_id, Status.scheduled, expected_status=expected_status)
    ward = kit.get(db, Ward, ward_id)
    if ward is None or not ward.active:
        raise InvalidInput(fields={"ward_id": "病区不存在"})
    if ward.institution_id != ref.to_institution_id:
        raise InvalidInput(fields={"ward_id": "只能预留接收机构的床位"})
    try:
        res = beds.reserve_bed(
            db, subject, BedReservationIn(ward_id=ward_id, patient_id=ref.patient_id, hours=hours,
                                          referral_id=ref.id, note=f"转诊单 #{ref.id}"),
            pool_institution_id=ref.from_institution_id)
    except rules.BedsFull:
        raise Conflict("该病区的床位刚刚已被预留完，转诊单未改变，请选择其他病区", code=BEDS_TAKEN) from None
    return service.schedule(db, subject, ref.id, bed_reservation_id=res.id, expected_status=Status.accepted)
