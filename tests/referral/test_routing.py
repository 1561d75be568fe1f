"""Routing help and booking from inside a referral (flows.py): counts a user would check, one unit of work."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.referral.helpers import history_count, setup, submitted_up
from tests.scheduling.helpers import World
from yilianti.exceptions import Conflict
from yilianti.kit import clock
from yilianti.models.patient import Patient
from yilianti.models.referral import Referral
from yilianti.models.scheduling import BedReservation, Booking, Slot, Ward
from yilianti.referral import flows, routing, service
from yilianti.scheduling import beds as beds_rules
from yilianti.scheduling import booking, schedules
from yilianti.scheduling.schemas import BedReservationIn, BookingIn, ScheduleIn, TemplateIn, WardIn


def _accepted(db: Session, w: World, patient: Patient) -> Referral:
    ref = submitted_up(db, w, patient)
    service.receive(db, w.lead_doc, ref.id)
    return service.accept(db, w.lead_doc, ref.id)


def _ward(db: Session, w: World, beds: int = 20, name: str = "儿童呼吸病区") -> Ward:
    dept = b.department(db, w.lead, "儿童呼吸科")
    return beds_rules.create_ward(db, w.lead_coord, WardIn(institution_id=w.lead.id, department_id=dept.id,
                                                           name=name, beds_total=beds,
                                                           reserve_alliance_id=w.alliance.id))


def _book_others(db: Session, w: World, n: int, pool: str = "reserved") -> None:
    for i in range(n):
        p = b.patient(db, w.comm_doc, name="预约" + "甲乙丙丁戊"[i])
        booking.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=p.id, pool=pool))  # type: ignore[arg-type]


def _session_elsewhere(db: Session, inst_coord, inst_id: int, alliance_id: int | None, name: str):  # type: ignore[no-untyped-def]
    sched = schedules.create_schedule(db, inst_coord, ScheduleIn(
        institution_id=inst_id, kind="clinic", name=name, specialty="儿童呼吸", reserve_alliance_id=alliance_id))
    day = clock.today_local() + timedelta(days=2)
    schedules.add_template(db, inst_coord, sched.id, TemplateIn(
        weekday=day.isoweekday(), start_time=time(8, 0), end_time=time(11, 0), capacity=9))
    schedules.generate_sessions(db, inst_coord, sched.id, day, day)
    return sched


def test_candidates_show_free_reserved_slots_and_beds(db: Session) -> None:
    w, patient = setup(db)
    ward = _ward(db, w)
    assert ward.reserved_beds == 5
    _book_others(db, w, 2)
    beds_rules.reserve_bed(db, w.comm_doc, BedReservationIn(ward_id=ward.id, patient_id=patient.id))
    found = routing.candidates(db, w.community.id, "儿童呼吸", "up", patient)
    lead = next(c for c in found if c.institution.id == w.lead.id)
    assert found[0].institution.id == w.lead.id  # level 3 first for an up-referral
    assert lead.free_reserved_slots == 10 - 2  # ceil(30/3) reserved, two booked
    assert lead.free_reserved_beds == 5 - 1
    assert [s.session_id for s in lead.sessions] == [w.session.id]
    assert lead.sessions[0].free_public == 20


def test_candidates_exclude_other_alliances_and_their_pools(db: Session) -> None:
    w, patient = setup(db)
    # a hospital in another alliance with the same specialty is never a candidate
    far = b.institution(db, "联盟外儿童医院", level=3)
    other = b.alliance(db, (far, "lead"), (w.outsider, "member"), name="外地儿科联盟")
    _session_elsewhere(db, b.subject_for(db, b.user(db, far, "coordinator")), far.id, other.id, "联盟外呼吸门诊")
    # the lead also leads another alliance: a session reserved for THAT alliance gives the community nothing
    third = b.alliance(db, (w.lead, "lead"), (w.outsider, "member"), name="另一个牵头联盟")
    s2 = _session_elsewhere(db, w.lead_coord, w.lead.id, third.id, "儿童呼吸 普通门诊")
    found = routing.candidates(db, w.community.id, "儿童呼吸", "up", patient)
    ids = {c.institution.id for c in found}
    assert far.id not in ids and w.outsider.id not in ids
    lead = next(c for c in found if c.institution.id == w.lead.id)
    by_schedule = {s.schedule_name: s for s in lead.sessions}
    assert by_schedule["儿童呼吸 普通门诊"].free_reserved == 0
    assert by_schedule["儿童呼吸 普通门诊"].free_public == 9 - 3
    assert lead.free_reserved_slots == 10
    # the outsider sees the far hospital's reserve, not ours
    out_found = routing.candidates(db, w.outsider.id, "儿童呼吸", "up", None)
    far_c = next(c for c in out_found if c.institution.id == far.id)
    assert far_c.free_reserved_slots == 3
    lead_for_outsider = next(c for c in out_found if c.institution.id == w.lead.id)
    assert {s.schedule_name: s.free_reserved for s in lead_for_outsider.sessions} == {
        "张儿科 专家门诊": 0, "儿童呼吸 普通门诊": 3}
    assert s2.id


def test_receiver_books_a_reserved_slot_from_inside_the_referral(db: Session) -> None:
    w, patient = setup(db)
    ref = _accepted(db, w, patient)
    before_hist = history_count(db, ref.id)
    ref = flows.book_slot(db, w.lead_doc, ref.id, w.session.id, pool="reserved", expected_status="accepted")
    assert ref.status == "scheduled"
    bookings = db.scalars(select(Booking).where(Booking.referral_id == ref.id)).all()
    assert len(bookings) == 1 and ref.booking_id == bookings[0].id
    assert bookings[0].pool == "reserved" and bookings[0].patient_id == patient.id
    # booked by the lead's doctor on behalf of the referring community centre: it counts as the
    # centre's booking (its list, the arrival notice, the sinking ratio)
    assert bookings[0].booked_by_institution_id == w.community.id
    assert bookings[0].booked_by_user_id == w.lead_doc.user_id
    assert db.scalar(select(func.count()).select_from(Slot).where(
        Slot.session_id == w.session.id, Slot.booked.is_(True))) == 1
    assert history_count(db, ref.id) == before_hist + 1
    lead = next(c for c in routing.candidates(db, w.community.id, "儿童呼吸", "up")
                if c.institution.id == w.lead.id)
    assert lead.free_reserved_slots == 9


def test_referring_doctor_may_book_too(db: Session) -> None:
    w, patient = setup(db)
    ref = _accepted(db, w, patient)
    ref = flows.book_slot(db, w.comm_doc, ref.id, w.session.id, pool="reserved")
    assert ref.status == "scheduled"
    assert db.get(Booking, ref.booking_id).booked_by_institution_id == w.community.id  # type: ignore[union-attr]


def test_a_raced_slot_answers_409_and_leaves_the_referral_unchanged(db: Session) -> None:
    w, patient = setup(db)
    ref = _accepted(db, w, patient)
    slot = db.scalars(select(Slot).where(Slot.session_id == w.session.id, Slot.pool == "reserved")
                      .order_by(Slot.seq)).first()
    assert slot is not None
    rival = b.patient(db, w.comm_doc, name="抢先者")
    booking.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=rival.id, slot_id=slot.id,
                                              pool="reserved"))
    before_hist = history_count(db, ref.id)
    with pytest.raises(Conflict) as exc:
        flows.book_slot(db, w.lead_doc, ref.id, w.session.id, slot_id=slot.id, pool="reserved",
                        expected_status="accepted")
    assert exc.value.code == "referral_slot_taken" and exc.value.status == 409
    db.refresh(ref)
    assert ref.status == "accepted" and ref.booking_id is None
    assert history_count(db, ref.id) == before_hist
    assert db.scalar(select(func.count()).select_from(Booking).where(Booking.referral_id == ref.id)) == 0


def test_booking_for_a_referral_that_cannot_be_scheduled_books_nothing(db: Session) -> None:
    w, patient = setup(db)
    ref = submitted_up(db, w, patient)
    service.receive(db, w.lead_doc, ref.id)  # received, not accepted
    with pytest.raises(Conflict):
        flows.book_slot(db, w.lead_doc, ref.id, w.session.id, pool="reserved")
    assert db.scalar(select(func.count()).select_from(Booking)) == 0
    assert db.scalar(select(func.count()).select_from(Slot).where(Slot.booked.is_(True))) == 0


def test_bed_from_inside_the_referral_and_a_full_ward(db: Session) -> None:
    w, patient = setup(db)
    ward = _ward(db, w, beds=4)  # ceil(4/4) = 1 reserved bed
    ref = _accepted(db, w, patient)
    ref = flows.reserve_bed(db, w.lead_doc, ref.id, ward.id, expected_status="accepted")
    assert ref.status == "scheduled" and ref.bed_reservation_id is not None
    db.refresh(ward)
    assert ward.reserved_held == 1
    # the bed comes from the sending member's reserve: it is attributed to that member, as a booking is
    res = db.get(BedReservation, ref.bed_reservation_id)
    assert res is not None and res.pool == "reserved"
    assert res.requested_by_institution_id == ref.from_institution_id != w.lead.id
    # a second referral finds the reserve gone: 409 and unchanged
    p2 = b.patient(db, w.comm_doc, name="第二位")
    ward.occupied = 3 - ward.public_held
    db.flush()
    ref2 = _accepted(db, w, p2)
    with pytest.raises(Conflict) as exc:
        flows.reserve_bed(db, w.lead_doc, ref2.id, ward.id)
    assert exc.value.code == "referral_bed_taken"
    db.refresh(ref2)
    assert ref2.status == "accepted" and ref2.bed_reservation_id is None


def test_step_deadlines_are_settings(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from yilianti.config import Settings, get_settings

    w, patient = setup(db)
    monkeypatch.setattr(get_settings(), "referral_step_deadlines", {"submitted": {"urgent": 7}})
    other = b.patient(db, w.comm_doc, name="默认值")
    with clock.frozen(clock.now()):
        ref = submitted_up(db, w, patient, priority="urgent")
        assert ref.due_at is not None and ref.due_at - clock.now() == timedelta(minutes=7)
        routine = submitted_up(db, w, other)  # not overridden: the 4 h default
        assert routine.due_at is not None and routine.due_at - clock.now() == timedelta(hours=4)
    with pytest.raises(ValueError, match="closed"):
        Settings(referral_step_deadlines={"closed": {"routine": 5}})
    with pytest.raises(ValueError, match="urgent"):
        Settings(referral_step_deadlines={"submitted": {"urgent": 0}})


def test_overdue_notification_reads_in_the_readers_language(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    from yilianti.models.outbox import OutboxMessage
    from yilianti.worker.runner import _deliver_notification

    w, patient = setup(db)
    ref = submitted_up(db, w, patient, priority="emergency")
    assert service.sweep_overdue(db, clock.now() + timedelta(hours=1)) == 1
    for msg in db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify")):
        _deliver_notification(db, msg.payload)
    db.flush()
    b.login(client, w.lead_doc.username)
    zh = client.get("/notifications").text
    assert f"转诊单 #{ref.id} 已超时（已提交）" in zh and "截止时间" in zh
    client.cookies.set("lang", "en")  # the 中文/English switch
    en = client.get("/notifications").text
    assert f"Referral #{ref.id} is overdue (submitted)" in en and "Deadline" in en
    assert "referral.overdue" not in zh + en
