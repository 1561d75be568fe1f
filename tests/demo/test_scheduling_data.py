"""The demo booking data: what the booking issue's acceptance needs, and figures from real bookings.

Reads the package-wide load (conftest.py); writes are made in a savepoint rolled back at once.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.auth.service import build_subject
from yilianti.authz.subject import Subject
from yilianti.demo import loader
from yilianti.demo import scheduling as demo_scheduling
from yilianti.kit import clock
from yilianti.models import Alliance, AuditEvent, Institution, Patient, Practitioner, User
from yilianti.models.outbox import OutboxMessage
from yilianti.models.patient import CareRelationship
from yilianti.models.scheduling import (
    BedReservation,
    Booking,
    BookingRequest,
    ClinicSession,
    Schedule,
    ScheduleTemplate,
    Ward,
)
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling import repository as sched_repo
from yilianti.scheduling import rolling, sinking
from yilianti.scheduling.schemas import BookingIn


def _inst(db: Session, name: str) -> Institution:
    inst = db.scalar(select(Institution).where(Institution.name == name))
    assert inst is not None, name
    return inst


def _alliance(db: Session, key: str) -> Alliance:
    alliance = db.scalar(select(Alliance).where(Alliance.key == key))
    assert alliance is not None, key
    return alliance


def _subject(db: Session, username: str) -> Subject:
    user = db.scalar(select(User).where(User.username == username))
    assert user is not None, username
    return build_subject(db, user, None)


def test_schedules_of_the_three_alliances_and_the_expert_at_the_community_centre(db: Session) -> None:
    rows = db.execute(select(Schedule, Institution.name, Alliance.key)
                      .join(Institution, Institution.id == Schedule.institution_id)
                      .outerjoin(Alliance, Alliance.id == Schedule.reserve_alliance_id)).all()
    by_site = Counter((name, key) for _, name, key in rows)
    assert by_site[("首都儿科研究所", "chaoyang-pediatric")] == 3
    assert by_site[("天津市儿童医院", "tianjin-pediatric")] == 2
    assert by_site[("香河县人民医院", "xianghe-county")] == 2
    cy = {s.specialty: s for s, name, _ in rows if name == "首都儿科研究所"}
    assert set(cy) == {"儿童呼吸", "儿童消化", "小儿心内"}
    lead = _inst(db, "首都儿科研究所")
    for schedule in cy.values():
        expert = db.get(Practitioner, schedule.practitioner_id)
        assert expert is not None and expert.home_institution_id == lead.id
        assert expert.title in ("主任医师", "副主任医师") and schedule.kind == "practitioner"
        templates = db.scalars(select(ScheduleTemplate).where(ScheduleTemplate.schedule_id == schedule.id)).all()
        assert len(templates) == 2 and all(t.capacity == 24 and t.timed for t in templates)
    (ct,) = [s for s, name, _ in rows if s.kind == "device"]
    assert ct.device_type == "CT" and ct.institution_id == _inst(db, "香河县人民医院").id
    # multi-site practice: the 中日友好医院 respiratory expert's session held at 太阳宫, no reserve
    (visit,) = [(s, key) for s, name, key in rows if name == "太阳宫社区卫生服务中心"]
    expert = db.get(Practitioner, visit[0].practitioner_id)
    assert expert is not None and expert.home_institution_id == _inst(db, "中日友好医院").id
    assert visit[1] is None
    # sessions from eight weeks ago to four weeks ahead
    today = clock.today_local()
    first, last = db.execute(select(func.min(ClinicSession.day), func.max(ClinicSession.day))).one()
    assert today - timedelta(days=56) <= first <= today - timedelta(days=50)
    assert today + timedelta(days=22) <= last <= today + timedelta(days=28)


def test_community_doctor_can_book_the_reserved_pool_of_upcoming_lead_sessions(db: Session) -> None:
    doctor = _subject(db, "chaoyang-community-doctor")
    assert doctor.acting_institution_name == "太阳宫社区卫生服务中心"
    lead = _inst(db, "首都儿科研究所")
    upcoming = [(s, fr, fp) for s, fr, fp in sched_repo.upcoming_sessions(db, institution_id=lead.id, days=28)
                if clock.as_utc(s.starts_at) > clock.now()]
    with_reserve = [(s, fr) for s, fr, _ in upcoming if fr > 0]
    assert len(with_reserve) >= 10
    assert any(fr == 1 for _, fr in with_reserve)  # one session keeps exactly one reserved slot (live demo)
    session, _ = with_reserve[0]
    avail = booking_rules.availability(db, doctor, session.id)
    assert "reserved" in avail.pools and avail.free_reserved > 0
    patient_id = db.scalar(select(Patient.id).join(CareRelationship, CareRelationship.patient_id == Patient.id)
                           .where(CareRelationship.institution_id == doctor.acting_institution_id,
                                  Patient.guardian_name.is_not(None))
                           .where(~Patient.id.in_(select(Booking.patient_id).where(Booking.session_id == session.id)))
                           .limit(1))
    assert patient_id is not None
    nested = db.begin_nested()
    try:
        booking = booking_rules.book(db, doctor, BookingIn(session_id=session.id, patient_id=patient_id))
        assert booking.pool == "reserved"
        assert booking_rules.availability(db, doctor, session.id).free_reserved == avail.free_reserved - 1
    finally:
        nested.rollback()


def test_sinking_ratio_comes_from_real_bookings(db: Session) -> None:
    today = clock.today_local()
    months = sinking.sinking_by_month(db, _alliance(db, "chaoyang-pediatric").id,
                                      today - timedelta(days=60), today - timedelta(days=1))
    assert len(months) >= 2
    for m in months:
        assert m.sinking_ratio is not None and abs(m.sinking_ratio - 1 / 3) < 0.01
        assert m.reserve_use is not None and 0 < m.reserve_use <= 1 and m.member_booked > 0
    for key in ("tianjin-pediatric", "xianghe-county"):
        figures = sinking.sinking_by_month(db, _alliance(db, key).id, today - timedelta(days=60), today)
        assert figures and all(f.reserved_booked > 0 for f in figures)


def test_history_has_arrivals_no_shows_cancellations_and_released_reserves(db: Session) -> None:
    now = clock.now()
    rows = db.execute(select(Booking.status, ClinicSession.starts_at)
                      .join(ClinicSession, ClinicSession.id == Booking.session_id)).all()
    past = Counter(status for status, starts in rows if clock.as_utc(starts) < now)
    assert past["arrived"] > 500 and past["no_show"] > 10 and past["cancelled"] > 5
    assert past["booked"] == 0  # every past booking was settled
    upcoming = Counter(status for status, starts in rows if clock.as_utc(starts) > now)
    assert upcoming["booked"] > 50 and upcoming["arrived"] == 0
    released = db.scalars(select(ClinicSession).where(ClinicSession.reserve_released_at.is_not(None),
                                                      ClinicSession.day < clock.today_local())).all()
    assert len(released) > 50
    assert all(clock.as_utc(s.reserve_released_at) == clock.as_utc(s.reserve_cutoff_at)  # type: ignore[arg-type]
               for s in released if clock.as_utc(s.starts_at) < now - timedelta(days=1))
    # member sites booked from the reserved pool; the history did not queue weeks-old notifications
    by_site = Counter(db.scalars(select(Institution.name).join(Booking, Booking.booked_by_institution_id == Institution.id)
                                 .where(Booking.pool == "reserved")))
    assert {"太阳宫社区卫生服务中心", "河西区桃园街社区卫生服务中心", "东丽医院", "渠口镇卫生院"} <= set(by_site)
    assert (db.scalar(select(func.count()).select_from(OutboxMessage)) or 0) < 20
    # one upcoming 天津 session was closed (停诊)
    assert db.scalar(select(func.count()).select_from(ClinicSession).where(ClinicSession.status == "cancelled")) == 1


def test_wards_bed_reservations_and_the_wait_list(db: Session) -> None:
    wards = {(i, w.name): w for w, i in db.execute(select(Ward, Institution.name).join(Institution))}
    cy = wards[("首都儿科研究所", "儿内科病区")]
    assert (cy.beds_total, cy.occupied, cy.reserved_beds) == (40, 28, 10)
    assert cy.reserve_alliance_id == _alliance(db, "chaoyang-pediatric").id and cy.reserved_held == 2
    assert sum(1 for inst, _ in wards if inst == "天津市儿童医院") == 2
    assert ("香河县人民医院", "心内科病区") in wards
    held = db.execute(select(BedReservation, Institution.name)
                      .join(Institution, Institution.id == BedReservation.requested_by_institution_id)
                      .where(BedReservation.status == "held")).all()
    assert len(held) == 4 and all(r.pool == "reserved" and clock.as_utc(r.expires_at) > clock.now() for r, _ in held)
    assert {name for _, name in held} == {"太阳宫社区卫生服务中心", "河西区桃园街社区卫生服务中心", "渠口镇卫生院"}
    (req,) = db.scalars(select(BookingRequest)).all()
    assert req.status == "waiting" and req.specialty == "儿童消化"
    assert req.requested_by_institution_id == _inst(db, "太阳宫社区卫生服务中心").id
    assert req.target_institution_id == _inst(db, "首都儿科研究所").id
    assert clock.now() < clock.as_utc(req.contact_by) <= clock.now() + timedelta(days=2)


def test_rolling_has_nothing_to_add_right_after_the_load(db: Session) -> None:
    nested = db.begin_nested()
    try:
        assert rolling.roll_sessions(db, days_ahead=28) == 0
    finally:
        nested.rollback()


def test_the_new_accounts_log_in_where_the_issue_needs_them(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    expected = {"chaoyang-community-doctor": ("doctor", "太阳宫社区卫生服务中心"),
                "chaoyang-lead-coordinator": ("coordinator", "首都儿科研究所"),
                "chaoyang-lead-doctor": ("doctor", "首都儿科研究所")}
    accounts = {a.username: a for a in loader.demo_accounts()}
    for username, (role, inst) in expected.items():
        account = accounts[username]
        assert (account.role, account.institution_name, account.password) == (role, inst, "Demo2026!")
        b.login(client, username, account.password)
        assert client.get("/account").status_code == 200
        client.cookies.clear()
    lead_doctor = db.scalar(select(User).where(User.username == "chaoyang-lead-doctor"))
    assert lead_doctor is not None
    respiratory = db.scalar(select(Schedule).where(Schedule.specialty == "儿童呼吸",
                                                   Schedule.institution_id == _inst(db, "首都儿科研究所").id))
    assert respiratory is not None and respiratory.practitioner_id == lead_doctor.practitioner_id


def test_the_marker_records_what_was_loaded(db: Session) -> None:
    assert demo_scheduling.is_loaded(db)
    detail = db.scalar(select(AuditEvent.detail).where(AuditEvent.action == "demo_load_scheduling"))
    assert detail and detail["schedules"] == 8 and detail["patients"] == 36 and detail["history_bookings"] > 500
