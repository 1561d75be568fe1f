"""Reserved pools, booking rules, cancel/reschedule/arrival, cut-off release, wait-list, beds."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.scheduling.helpers import world
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.models.scheduling import Booking, Slot
from yilianti.scheduling import beds, rules, schedules, sinking
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling import repository as sched_repo
from yilianti.scheduling import waitlist as waitlist_rules
from yilianti.scheduling.schemas import BedReservationIn, BookingIn, WaitRequestIn, WardIn


def test_reserved_share_is_ceil_of_capacity_and_spread(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=30)
    assert w.session.capacity == 30 and w.session.reserved_capacity == 10  # ceil(30 × 1/3)
    seqs = sorted(db.scalars(select(Slot.seq).where(Slot.session_id == w.session.id, Slot.pool == "reserved")))
    assert len(seqs) == 10 and seqs[0] == 1 and seqs[-1] > 20  # spread over the morning
    assert rules.reserved_count(31, 1 / 3) == 11 and rules.reserved_count(10, 0.25) == 3


def test_grassroots_doctor_books_reserved_pool_first_and_gets_a_slip(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=6)
    patient = b.patient(db, w.comm_doc, name="王小虎")
    av = booking_rules.availability(db, w.comm_doc, w.session.id)
    assert av.pools == ["reserved", "public"] and av.free_reserved == 2 and av.free_public == 4
    booking = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patient.id))
    assert booking.pool == "reserved" and booking.number.startswith(f"{w.day:%Y%m%d}-")
    av = booking_rules.availability(db, w.comm_doc, w.session.id)
    assert av.free_reserved == 1 and av.booked == 1
    # the lead hospital now sees the patient it will receive (booking grant), and it is audited
    from yilianti.authz import policy

    assert policy.decide(db, w.lead_doc, patient.id) is not None
    # a secondary hospital (not grassroots) only sees the public pool in a grassroots-only alliance
    assert booking_rules.availability(db, w.second_doc, w.session.id).pools == ["public"]
    # an institution outside the alliance cannot book at all
    out_patient = b.patient(db, w.out_doc, name="李四", resident_id=b.resident_id(seq=44))
    with pytest.raises(Forbidden):
        booking_rules.book(db, w.out_doc, BookingIn(session_id=w.session.id, patient_id=out_patient.id))


def test_the_booking_lets_the_site_see_the_patient_until_cancelled_or_a_week_after(db):  # type: ignore[no-untyped-def]
    from yilianti.authz import policy
    from yilianti.models.patient import AccessGrant, Patient

    w = world(db, capacity=6)
    patient = b.patient(db, w.comm_doc, name="王小明")
    assert policy.decide(db, w.lead_doc, patient.id) is None  # the lead has no relationship yet
    booking = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patient.id))
    # the booking itself is the basis: no grant row is written for it
    assert db.scalar(select(func.count()).select_from(AccessGrant).where(AccessGrant.patient_id == patient.id)) == 0
    access = policy.decide(db, w.lead_doc, patient.id)
    assert access is not None and access.basis == "grant" and access.grant_id is None
    assert patient.id in db.scalars(select(Patient.id).where(policy.readable(w.lead_doc)))
    # the secondary hospital (no booking there) still sees nothing
    assert policy.decide(db, w.second_doc, patient.id) is None
    ends = clock.as_utc(w.session.ends_at)
    with clock.frozen(ends + timedelta(days=6)):  # arrived or not, until a week after the session
        assert policy.decide(db, w.lead_doc, patient.id) is not None
    with clock.frozen(ends + timedelta(days=7, minutes=1)):
        assert policy.decide(db, w.lead_doc, patient.id) is None
        assert patient.id not in db.scalars(select(Patient.id).where(policy.readable(w.lead_doc)))
    booking_rules.cancel(db, w.comm_doc, booking.id, "家长改期")  # cancelling ends it at once
    assert policy.decide(db, w.lead_doc, patient.id) is None
    assert patient.id not in db.scalars(select(Patient.id).where(policy.readable(w.lead_doc)))


def test_members_setting_opens_reserve_to_secondary_hospitals(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=6, reserve_for="members")
    assert booking_rules.availability(db, w.second_doc, w.session.id).pools == ["reserved", "public"]


def test_bad_bookings_change_nothing(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=4)
    patient = b.patient(db, w.comm_doc)
    stranger = b.patient(db, w.out_doc, name="赵六", resident_id=b.resident_id(seq=33))
    before = db.scalar(select(func.count()).select_from(Booking))
    with pytest.raises(NotFound):  # a patient this site has no relationship with
        booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=stranger.id))
    with pytest.raises(NotFound):
        booking_rules.book(db, w.comm_doc, BookingIn(session_id=999999, patient_id=patient.id))
    booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patient.id))
    with pytest.raises(rules.DuplicateBooking):
        booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patient.id))
    with clock.frozen(datetime.combine(w.day, time(9, 0), clock.SHANGHAI)), pytest.raises(rules.SessionClosed):
        other = b.patient(db, w.comm_doc, name="钱七", resident_id=b.resident_id(seq=12))
        booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=other.id))
    assert db.scalar(select(func.count()).select_from(Booking)) == before + 1


def test_full_session_offers_the_waitlist_and_cancel_frees_the_slot(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=3)
    patients = [b.patient(db, w.comm_doc, name=n, resident_id=b.resident_id(seq=i))
                for i, n in enumerate(["甲一", "乙二", "丙三", "丁四"])]
    bookings = [booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=p.id))
                for p in patients[:3]]
    with pytest.raises(rules.SlotFull):
        booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patients[3].id))
    req = waitlist_rules.request_wait(db, w.comm_doc, WaitRequestIn(patient_id=patients[3].id,
                                                             target_institution_id=w.lead.id, specialty="儿童呼吸"))
    assert req.status == "waiting" and clock.as_utc(req.contact_by) > clock.now()
    assert [r.id for r, _ in waitlist_rules.waitlist(db, w.lead_coord)] == [req.id]
    booking_rules.cancel(db, w.comm_doc, bookings[0].id, "家长改期")
    booking = waitlist_rules.book_from_request(db, w.comm_doc2, req.id, w.session.id)
    assert booking.slot_id == bookings[0].slot_id and db.get(type(req), req.id).status == "booked"


def test_reschedule_and_arrival_and_no_show(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=4)
    later_day = w.day + timedelta(days=7)
    schedules.generate_sessions(db, w.lead_coord, w.schedule.id, later_day, later_day)
    later = sched_repo.upcoming_sessions(db, schedule_id=w.schedule.id, start=later_day, days=1)[0][0]
    p = b.patient(db, w.comm_doc)
    first = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=p.id))
    moved = booking_rules.reschedule(db, w.comm_doc, first.id, later.id)
    assert db.get(Booking, first.id).status == "cancelled" and moved.rescheduled_from_id == first.id
    with pytest.raises(Forbidden):  # only the session's site records arrival
        booking_rules.mark_arrived(db, w.comm_doc, moved.id)
    with pytest.raises(InvalidInput) as early:  # not the day yet: only with a reason
        booking_rules.mark_arrived(db, w.lead_coord, moved.id, "  ")
    assert "arrival_reason" in early.value.fields and early.value.params["day"] == later_day.isoformat()
    with clock.frozen(datetime.combine(later_day, time(8, 40), clock.SHANGHAI)):
        assert booking_rules.mark_arrived(db, w.lead_coord, moved.id).status == "arrived"
        with pytest.raises(Conflict):
            booking_rules.cancel(db, w.comm_doc, moved.id)


def test_reserve_returns_to_public_pool_at_cutoff(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=9)
    p = b.patient(db, w.comm_doc)
    booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=p.id))
    assert booking_rules.release_reserves(db) == 0  # not yet
    cutoff = clock.as_utc(w.session.reserve_cutoff_at)
    assert cutoff == clock.as_utc(w.session.starts_at) - timedelta(hours=24)
    released = booking_rules.release_reserves(db, cutoff + timedelta(seconds=1))
    assert released == 2  # 3 reserved, 1 booked
    av = booking_rules.availability(db, w.second_doc, w.session.id)
    assert av.free_reserved == 0 and av.free_public == 8
    assert booking_rules.release_reserves(db, cutoff + timedelta(minutes=5)) == 0  # runs once


def test_cancel_session_notifies_bookers(db):  # type: ignore[no-untyped-def]
    from yilianti.models.outbox import OutboxMessage

    w = world(db, capacity=4)
    p = b.patient(db, w.comm_doc)
    booking = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=p.id))
    with pytest.raises(Forbidden):
        schedules.cancel_session(db, w.comm_doc, w.session.id, "专家外出")
    assert schedules.cancel_session(db, w.lead_coord, w.session.id, "专家外出会诊") == 1
    assert db.get(Booking, booking.id).status == "cancelled"
    msgs = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify")).all()
    assert any(m.payload["institution_id"] == w.community.id and "停诊" in m.payload["title"] for m in msgs)


def test_sinking_ratio_from_real_bookings(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=30)
    for i in range(4):
        p = b.patient(db, w.comm_doc, name="患者" + "甲乙丙丁"[i], resident_id=b.resident_id(seq=i + 5))
        booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=p.id))
    lp = b.patient(db, w.lead_doc, name="院内患者", resident_id=b.resident_id(seq=40))
    booking_rules.book(db, w.lead_doc, BookingIn(session_id=w.session.id, patient_id=lp.id))
    [month] = sinking.sinking_by_month(db, w.alliance.id, w.day.replace(day=1), w.day)
    assert (month.offered, month.reserved, month.reserved_booked, month.member_booked) == (30, 10, 4, 4)
    assert month.sinking_ratio == pytest.approx(1 / 3) and month.reserve_use == pytest.approx(0.4)


def test_bed_pool_reserves_a_quarter_for_members(db):  # type: ignore[no-untyped-def]
    w = world(db, capacity=2)
    ward = beds.create_ward(db, w.lead_coord, WardIn(institution_id=w.lead.id, name="儿内一病区",
                                                        beds_total=10, occupied=5,
                                                        reserve_alliance_id=w.alliance.id))
    assert ward.reserved_beds == 3  # ceil(10 × 1/4)
    pats = [b.patient(db, w.comm_doc, name=f"住院{'甲乙丙丁'[i]}", resident_id=b.resident_id(seq=60 + i))
            for i in range(4)]
    res = [beds.reserve_bed(db, w.comm_doc, BedReservationIn(ward_id=ward.id, patient_id=p.id))
           for p in pats]
    assert [r.pool for r in res] == ["reserved", "reserved", "reserved", "public"]
    db.refresh(ward)
    assert (ward.reserved_held, ward.public_held) == (3, 1)
    lead_patient = b.patient(db, w.lead_doc, name="院内住院", resident_id=b.resident_id(seq=70))
    assert beds.reserve_bed(db, w.lead_doc, BedReservationIn(ward_id=ward.id, patient_id=lead_patient.id)).pool \
        == "public"
    with pytest.raises(rules.BedsFull):  # 5 occupied + 3 reserved + 2 public = 10
        beds.reserve_bed(db, w.lead_doc, BedReservationIn(ward_id=ward.id, patient_id=b.patient(
            db, w.lead_doc, name="院内二", resident_id=b.resident_id(seq=71)).id))
    beds.admit_reservation(db, w.lead_coord, res[0].id)
    db.refresh(ward)
    assert (ward.occupied, ward.reserved_held) == (6, 2)
    with clock.frozen(clock.now() + timedelta(hours=49)):
        assert beds.expire_reservations(db) == 4
    db.refresh(ward)
    assert (ward.reserved_held, ward.public_held) == (0, 0)
    with pytest.raises(InvalidInput):
        beds.create_ward(db, w.lead_coord, WardIn(institution_id=w.lead.id, name="儿内一病区", beds_total=5))


def test_a_colliding_slip_number_draws_again_and_keeps_the_booking(db, monkeypatch):  # type: ignore[no-untyped-def]
    # the number's random part is 4 hex digits: two sessions of one day share "date-seq-", so a
    # collision is rare but real (it once failed a demo load as a false "duplicate booking")
    w = world(db, capacity=6)
    first = b.patient(db, w.comm_doc, name="王小虎")
    second = b.patient(db, w.comm_doc, name="李小龙", resident_id=b.resident_id(seq=45))
    drawn = iter(["abcd", "abcd", "abcd", "beef"])
    monkeypatch.setattr(booking_rules.secrets, "token_hex", lambda n: next(drawn))
    one = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=first.id))
    # give the first booking the number the second will draw first: same "date-seq-ABCD"
    next_seq = db.scalar(select(func.min(Slot.seq)).where(Slot.session_id == w.session.id, Slot.pool == "reserved",
                                                          Slot.booked.is_(False)))
    db.execute(Booking.__table__.update().where(Booking.id == one.id)
               .values(number=f"{w.day:%Y%m%d}-{next_seq:03d}-ABCD"))
    one_number = db.scalar(select(Booking.number).where(Booking.id == one.id))
    two = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=second.id))
    assert two.number.endswith("-BEEF") and two.number != one_number
    assert db.scalar(select(func.count()).select_from(Booking).where(Booking.session_id == w.session.id)) == 2
    with pytest.raises(rules.DuplicateBooking):  # the real duplicate is still refused
        booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=second.id))


def test_system_admin_does_not_read_or_change_bookings(db) -> None:  # type: ignore[no-untyped-def]
    """A booking names its patient: only the booking and the site institutions see it, not the system admin."""
    w = world(db)
    patient = b.patient(db, w.comm_doc, name="王小虎")
    booking = booking_rules.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patient.id))
    admin = b.subject_for(db, b.user(db, None, "system_admin"))
    for attempt in (lambda: booking_rules.get_booking(db, admin, booking.id),
                    lambda: booking_rules.cancel(db, admin, booking.id, "x")):
        with pytest.raises(NotFound):
            attempt()
    assert booking_rules.get_booking(db, w.comm_doc, booking.id)[2].id == patient.id
