"""Demo booking data: schedules, eight weeks of booking history, wards with bed pools, a wait-list.

Everything goes through the yilianti.scheduling rules, as a user would do it: the history is
booked under a frozen clock some days before each past session (`booking.book` refuses a
session that has started), the reserve is returned at each session's cut-off by
`booking_rules.release_reserves`, and arrivals and no-shows are marked on the session day. So the
sinking ratio (号源下沉比例) and its use that the alliance pages show are computed from real
bookings.

What it builds (the acceptance of the booking issue is a 太阳宫 community doctor booking a
首都儿科研究所 expert, both members of the Chaoyang pediatric alliance):

- three accounts (loader.SCHEDULING_ACCOUNTS) and 36 patients registered at 太阳宫社区卫生服务中心
  (30 children with guardians, 6 adults; Beijing 朝阳区 resident IDs);
- expert schedules at 首都儿科研究所 (儿童呼吸, 儿童消化, 小儿心内) and 天津市儿童医院 (儿童呼吸, 儿童消化)
  with a reserve for their alliance, a CT and a cardiology expert clinic at 香河县人民医院 reserved
  for the county community, and the 中日友好医院 respiratory expert's weekly session at 太阳宫
  (multi-site practice, no reserve); sessions from 56 days ago to 28 days ahead;
- the history: bookings by member sites (mostly from the reserved pool), most arrived, a few
  no-shows and cancellations, reserves released at cut-off; upcoming bookings that leave
  reserved slots free — the first 首都儿科研究所 session two or more days ahead keeps exactly one
  reserved slot (for a live demo of "the last reserved slot");
- an ad-hoc closure (停诊) of one upcoming 天津市儿童医院 session;
- wards with bed pools and a few held bed reservations from member sites;
- a wait-list request from 太阳宫 for 儿童消化 with a contact-by deadline.

`load(db)` flushes, never commits, and records the marker audit event
("demo_load_scheduling"); `is_loaded(db)` tells whether it ran.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.authz.subject import Subject
from yilianti.demo import loader
from yilianti.kit import clock
from yilianti.models.alliance import Alliance, Department, Institution
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.patient import CareRelationship, Patient
from yilianti.models.scheduling import Booking, ClinicSession, Pool, Schedule, SessionStatus
from yilianti.models.workforce import PracticeSite, Practitioner, Title
from yilianti.patients import service as patient_service
from yilianti.scheduling import beds as beds_rules
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling import rules, waitlist
from yilianti.scheduling import schedules as schedules_rules
from yilianti.scheduling.schemas import (
    BedReservationIn,
    BookingIn,
    ScheduleIn,
    TemplateIn,
    WaitRequestIn,
    WardIn,
)

__all__ = ["MARKER_ACTION", "PAST_DAYS", "AHEAD_DAYS", "is_loaded", "load"]

MARKER_ACTION = "demo_load_scheduling"
SEED = loader.SEED + 1
PAST_DAYS = 56
AHEAD_DAYS = 28

CY_LEAD, CY_COMMUNITY, CHAOYANG = loader.CY_LEAD, loader.CY_COMMUNITY, loader.CHAOYANG_ALLIANCE
TJ_LEAD, TJ_COMMUNITY, DONGLI = loader.LEAD, loader.COMMUNITY, loader.SECONDARY
COUNTY, TOWNSHIP = loader.COUNTY, loader.TOWNSHIP
CHINA_JAPAN = "中日友好医院"


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


# --------------------------------------------------------------------------- what is scheduled


@dataclass(frozen=True)
class _Plan:
    """A schedule and how it is booked.

    expert: (home institution, home department, n-th senior physician) or ("site", home institution)
    for the expert of that institution who practises at the schedule's site (PracticeSite).
    bookers: (username, share) of the reserved bookings; public bookings are made by `public_by`.
    """

    key: str
    institution: str
    kind: str
    department: str  # department where the schedule is held
    specialty: str
    weekdays: tuple[int, ...]
    start: time
    end: time
    capacity: int
    alliance: str | None
    scheduler: str  # account that creates the schedule
    site_staff: str  # account that marks arrivals
    bookers: tuple[str, ...]  # accounts booking the reserved pool (or the public one when no reserve)
    public_by: str
    reserved_use: tuple[int, int]  # reserved bookings per past session (min, max), capped at the reserve
    public_use: tuple[int, int]
    location: str
    instructions: str
    fee: str
    expert: tuple[str, ...] | None = None
    device_type: str | None = None
    name: str | None = None


_CHILD_NOTE = "请携带患儿身份证或户口本、医保卡及既往检查结果，提前30分钟到诊区报到；需监护人陪同。"

_PLANS: tuple[_Plan, ...] = (
    _Plan("cy-resp", CY_LEAD, "practitioner", "儿童呼吸科", "儿童呼吸", (2, 4), time(8), time(11, 30), 24, CHAOYANG,
          "chaoyang-lead-coordinator", "chaoyang-lead-coordinator", ("chaoyang-community-doctor",),
          "chaoyang-community-doctor", (4, 8), (1, 4), "门诊楼2层 儿童呼吸专家诊区 5诊室", _CHILD_NOTE, "50",
          expert=(CY_LEAD, "儿童呼吸科", "0")),
    _Plan("cy-gi", CY_LEAD, "practitioner", "儿内科", "儿童消化", (1, 3), time(8), time(11, 30), 24, CHAOYANG,
          "chaoyang-lead-coordinator", "chaoyang-lead-coordinator", ("chaoyang-community-doctor",),
          "chaoyang-community-doctor", (5, 8), (1, 3), "门诊楼3层 儿内科专家诊区 2诊室", _CHILD_NOTE, "50",
          expert=(CY_LEAD, "儿内科", "0")),
    _Plan("cy-cardio", CY_LEAD, "practitioner", "儿内科", "小儿心内", (2, 5), time(13, 30), time(16, 30), 24,
          CHAOYANG, "chaoyang-lead-coordinator", "chaoyang-lead-coordinator", ("chaoyang-community-doctor",),
          "chaoyang-community-doctor", (2, 6), (1, 3), "门诊楼3层 儿内科专家诊区 6诊室（心脏彩超同层）",
          _CHILD_NOTE, "30", expert=(CY_LEAD, "儿内科", "1")),
    _Plan("tj-resp", TJ_LEAD, "practitioner", "儿童呼吸科", "儿童呼吸", (1, 4), time(8), time(11, 30), 20,
          loader.TIANJIN_ALLIANCE, "tj-lead-coordinator", "tj-lead-coordinator",
          ("tj-community-doctor", "tj-community-doctor", "dongli-doctor"), "tj-community-doctor", (3, 7), (1, 3),
          "门诊楼2层 呼吸专家诊区", _CHILD_NOTE, "50", expert=(TJ_LEAD, "儿童呼吸科", "0")),
    _Plan("tj-gi", TJ_LEAD, "practitioner", "儿内科", "儿童消化", (3, 5), time(8), time(11, 30), 20,
          loader.TIANJIN_ALLIANCE, "tj-lead-coordinator", "tj-lead-coordinator",
          ("tj-community-doctor", "dongli-doctor"), "dongli-doctor", (2, 6), (1, 3),
          "门诊楼3层 儿内科专家诊区", _CHILD_NOTE, "50", expert=(TJ_LEAD, "儿内科", "0")),
    _Plan("xh-ct", COUNTY, "device", "影像科", "影像", (1, 3, 5), time(8), time(12), 32, loader.XIANGHE_ALLIANCE,
          "admin", "xianghe-doctor", ("qukou-doctor",), "xianghe-doctor", (5, 11), (3, 9),
          "医技楼1层 CT室", "检查前请取下金属物品；增强CT需空腹4小时并携带肾功能化验单，由家属陪同。", "280",
          device_type="CT", name="CT检查（64排螺旋CT）"),
    _Plan("xh-cardio", COUNTY, "practitioner", "心内科", "心血管", (1, 3), time(8), time(11, 30), 20,
          loader.XIANGHE_ALLIANCE, "admin", "xianghe-doctor", ("qukou-doctor",), "xianghe-doctor", (3, 7), (2, 6),
          "门诊楼2层 心内科专家诊室", "请携带既往心电图、化验单和正在服用的药物。", "20",
          expert=(COUNTY, "心内科", "0")),
    _Plan("cj-resp-tyg", CY_COMMUNITY, "practitioner", "全科", "呼吸", (3,), time(8), time(11, 30), 12, None,
          "admin", "chaoyang-community-doctor", (), "chaoyang-community-doctor", (0, 0), (5, 10),
          "太阳宫社区卫生服务中心 2层 专家诊室", "中日友好医院呼吸专家社区坐诊；请携带既往胸片或CT、肺功能报告。", "20",
          expert=("site", CHINA_JAPAN)),
)


# --------------------------------------------------------------------------- helpers


class _Ctx:
    def __init__(self, db: Session, r: random.Random) -> None:
        self.db, self.r = db, r
        self.inst: dict[str, Institution] = {i.name: i for i in db.scalars(select(Institution))}
        self.alliances: dict[str, Alliance] = {a.key: a for a in db.scalars(select(Alliance))}
        self._subjects: dict[tuple[str, int | None], Subject] = {}
        self.patients: dict[str, list[int]] = {}  # username → patients that account's site may book for

    def dept(self, inst: str, name: str) -> Department:
        d = self.db.scalar(select(Department).where(Department.institution_id == self.inst[inst].id,
                                                    Department.name == name))
        assert d is not None, (inst, name)
        return d

    def subject(self, username: str) -> Subject:
        key = (username, None)
        if key not in self._subjects:
            user = self.db.scalar(select(User).where(User.username == username))
            assert user is not None, username
            self._subjects[key] = auth_service.build_subject(self.db, user, None)
        return self._subjects[key]


def _local(day: Any, at: time) -> datetime:
    return datetime.combine(day, at, clock.SHANGHAI)


def _senior(db: Session, inst: Institution, dept: Department, index: int) -> Practitioner:
    """The n-th senior physician (主任/副主任医师) of a department, the head first."""
    rows = list(db.scalars(select(Practitioner).where(
        Practitioner.home_institution_id == inst.id, Practitioner.department_id == dept.id,
        Practitioner.title.in_((Title.chief, Title.associate_chief)))
        .order_by(Practitioner.is_department_head.desc(), Practitioner.id)))
    if not rows:  # not in this data set, but stay robust: any physician of the department
        rows = list(db.scalars(select(Practitioner).where(Practitioner.department_id == dept.id)
                               .order_by(Practitioner.id)))
    assert rows, (inst.name, dept.name)
    return rows[index % len(rows)]


def _head(db: Session, ctx: _Ctx, inst: str, dept: str) -> Practitioner:
    p = db.scalar(select(Practitioner).where(Practitioner.department_id == ctx.dept(inst, dept).id,
                                             Practitioner.is_department_head.is_(True)))
    assert p is not None, (inst, dept)
    return p


# --------------------------------------------------------------------------- loading


def load(db: Session) -> dict[str, int]:
    """Create the booking data (see the module docstring); returns a few counts."""
    r = random.Random(SEED)
    ctx = _Ctx(db, r)
    now = clock.now()
    today = clock.today_local()
    start = today - timedelta(days=PAST_DAYS)
    origin = _local(start - timedelta(days=7), time(9))  # when the schedules were set up
    with clock.frozen(origin):
        _accounts(db, ctx)
        registered = _register_patients(db, ctx)
    _patient_pools(db, ctx)
    with clock.frozen(origin + timedelta(hours=2)):
        schedules = _schedules(db, ctx)
        for schedule in schedules.values():
            schedules_rules.generate_sessions(db, None, schedule.id, start, today + timedelta(days=AHEAD_DAYS))
    db.flush()
    with loader.history_kept_in_app(db):
        history = _history(db, ctx, schedules, now)
    closed = _closure(db, ctx, schedules, now)
    upcoming = _upcoming(db, ctx, schedules, now)
    released = booking_rules.release_reserves(db)  # sessions within their cut-off now
    beds = _wards(db, ctx)
    _waitlist(db, ctx, schedules)
    counts = {"schedules": len(schedules), "patients": registered, "history_bookings": history,
              "upcoming_bookings": upcoming, "closed_sessions": closed, "released_now": released,
              "bed_reservations": beds}
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, loader.DEMO_VERSION, channel="cli", detail=counts)
    db.flush()
    return counts


def _accounts(db: Session, ctx: _Ctx) -> None:
    existing = set(db.scalars(select(User.username).where(
        User.username.in_([a.username for a in loader.SCHEDULING_ACCOUNTS]))))
    for spec in loader.SCHEDULING_ACCOUNTS:
        if spec.username in existing:
            continue
        assert spec.institution is not None
        practitioner = _head(db, ctx, spec.institution, spec.staff) if spec.staff else None
        auth_service.create_user(
            db, None, spec.username, loader.DEMO_PASSWORD, spec.display_name or (practitioner.name if practitioner
                                                                               else spec.username),
            [(str(spec.role), ctx.inst[spec.institution].id, None)],
            practitioner_id=practitioner.id if practitioner else None)
    db.flush()


def _register_patients(db: Session, ctx: _Ctx) -> int:
    """30 children and 6 adults of 朝阳区 registered at 太阳宫 by its doctor (through the real flow)."""
    r = ctx.r
    subject = ctx.subject("chaoyang-community-doctor")
    alliance_id = ctx.alliances[CHAOYANG].id
    people = loader._People(r)
    children = loader._Plan(CY_COMMUNITY, 30, 1.0, ("110105",), CHAOYANG)
    adults = loader._Plan(CY_COMMUNITY, 6, 0.0, ("110105",), CHAOYANG)
    seq = 0
    for plan in (children, adults):
        for _ in range(plan.count):
            seq += 1
            data = people.person(plan)
            roll = r.random()
            consent: dict[str, Any] = ({"consent_scope": "none"} if roll < 0.1 else
                                       {"consent_scope": "alliance", "consent_alliance_id": alliance_id}
                                       if roll < 0.7 else {"consent_scope": "all"})
            payload = {**data, "mrn": f"MZ2026{seq:06d}", **consent}
            patient_service.register(db, subject, patient_service.RegistrationIn.model_validate(payload))
    db.flush()
    return seq


def _patient_pools(db: Session, ctx: _Ctx) -> None:
    """Patients each booking account's site may book for: its own registered patients (children for pediatrics)."""
    def registered_at(inst: str, children_only: bool) -> list[int]:
        stmt = (select(Patient.id).join(CareRelationship, CareRelationship.patient_id == Patient.id)
                .where(CareRelationship.institution_id == ctx.inst[inst].id, CareRelationship.ended_at.is_(None))
                .order_by(Patient.id))
        if children_only:
            stmt = stmt.where(Patient.guardian_name.is_not(None))
        return list(dict.fromkeys(db.scalars(stmt)))

    ctx.patients = {
        "chaoyang-community-doctor": registered_at(CY_COMMUNITY, True),
        "chaoyang-community-doctor/adults": registered_at(CY_COMMUNITY, False),
        "tj-community-doctor": registered_at(TJ_COMMUNITY, True),
        "dongli-doctor": registered_at(DONGLI, True),
        "qukou-doctor": registered_at(TOWNSHIP, False),
        "xianghe-doctor": registered_at(COUNTY, False),
    }


def _schedules(db: Session, ctx: _Ctx) -> dict[str, Schedule]:
    out: dict[str, Schedule] = {}
    for plan in _PLANS:
        inst = ctx.inst[plan.institution]
        dept = ctx.dept(plan.institution, plan.department)
        practitioner: Practitioner | None = None
        if plan.expert and plan.expert[0] == "site":
            practitioner = db.scalar(select(Practitioner).join(PracticeSite).where(
                PracticeSite.institution_id == inst.id,
                Practitioner.home_institution_id == ctx.inst[plan.expert[1]].id).order_by(Practitioner.id).limit(1))
        elif plan.expert:
            home, home_dept, index = plan.expert
            practitioner = _senior(db, ctx.inst[home], ctx.dept(home, home_dept), int(index))
        assert plan.kind != "practitioner" or practitioner is not None, plan.key
        if plan.name:
            name = plan.name
        elif plan.institution == CY_COMMUNITY and practitioner is not None:
            name = f"{practitioner.name} {plan.specialty}专家门诊（{CHINA_JAPAN}）"
        else:
            assert practitioner is not None
            name = f"{practitioner.name} {plan.specialty}专家门诊"
        subject = ctx.subject(plan.scheduler)
        schedule = schedules_rules.create_schedule(db, subject, ScheduleIn(
            institution_id=inst.id, kind=plan.kind, name=name,  # type: ignore[arg-type]
            practitioner_id=practitioner.id if practitioner else None, department_id=dept.id,
            device_type=plan.device_type, specialty=plan.specialty, location=plan.location,  # type: ignore[arg-type]
            instructions=plan.instructions, fee_yuan=plan.fee,
            reserve_alliance_id=ctx.alliances[plan.alliance].id if plan.alliance else None))
        for weekday in plan.weekdays:
            schedules_rules.add_template(db, subject, schedule.id, TemplateIn(
                weekday=weekday, start_time=plan.start, end_time=plan.end, capacity=plan.capacity, timed=True))
        out[plan.key] = schedule
    return out


def _sessions(db: Session, schedule_id: int) -> list[ClinicSession]:
    return list(db.scalars(select(ClinicSession).where(ClinicSession.schedule_id == schedule_id)
                           .order_by(ClinicSession.starts_at)))


def _book(db: Session, ctx: _Ctx, username: str, session: ClinicSession, pool: str, taken: set[int],
          pool_key: str | None = None) -> Booking | None:
    candidates = [p for p in ctx.patients[pool_key or username] if p not in taken]
    if not candidates:
        return None
    patient_id = ctx.r.choice(candidates)
    try:
        booking = booking_rules.book(db, ctx.subject(username),
                               BookingIn(session_id=session.id, patient_id=patient_id, pool=pool))  # type: ignore[arg-type]
    except rules.SlotFull:
        return None
    taken.add(patient_id)
    return booking


def _fill(db: Session, ctx: _Ctx, plan: _Plan, session: ClinicSession, reserved: int, public: int) -> list[Booking]:
    """Book `reserved` reserved and `public` public slots of a session by the plan's accounts."""
    taken: set[int] = set()
    made: list[Booking] = []
    adults = plan.key == "cj-resp-tyg"
    for _ in range(min(reserved, session.reserved_capacity)):
        booker = ctx.r.choice(plan.bookers)
        b = _book(db, ctx, booker, session, Pool.reserved, taken)
        if b is not None:
            made.append(b)
    for _ in range(public):
        key = "chaoyang-community-doctor/adults" if adults else None
        b = _book(db, ctx, plan.public_by, session, Pool.public, taken, key)
        if b is not None:
            made.append(b)
    return made


def _history(db: Session, ctx: _Ctx, schedules: dict[str, Schedule], now: datetime) -> int:
    r = ctx.r
    made: list[tuple[_Plan, ClinicSession, Booking, datetime]] = []
    past: list[ClinicSession] = []
    for plan in _PLANS:
        for session in _sessions(db, schedules[plan.key].id):
            starts = clock.as_utc(session.starts_at)
            if clock.as_utc(session.ends_at) > now:
                continue
            past.append(session)
            booked_at = max(starts - timedelta(days=r.randint(2, 12), hours=r.randint(0, 8)),
                            clock.as_utc(session.created_at) + timedelta(hours=1))
            with clock.frozen(booked_at):
                bookings = _fill(db, ctx, plan, session, r.randint(*plan.reserved_use), r.randint(*plan.public_use))
            made += [(plan, session, b, booked_at) for b in bookings]
    # a few cancelled before the cut-off (the slot goes back to its pool), the rest arrived or missed
    cancelled: set[int] = set()
    for plan, _session, booking, booked_at in made:
        if r.random() < 0.05:
            booker = next(u for u in (*plan.bookers, plan.public_by)
                          if ctx.subject(u).acting_institution_id == booking.booked_by_institution_id)
            with clock.frozen(booked_at + timedelta(hours=r.randint(2, 20))):
                booking_rules.cancel(db, ctx.subject(booker), booking.id, r.choice(["患儿已好转", "家长临时有事", "已在他院就诊"]))
            cancelled.add(booking.id)
    for cutoff in sorted({clock.as_utc(s.reserve_cutoff_at) for s in past if s.reserve_cutoff_at is not None}):
        with clock.frozen(cutoff):
            booking_rules.release_reserves(db, cutoff)
    for plan, session, booking, _ in made:
        if booking.id in cancelled:
            continue
        site = ctx.subject(plan.site_staff)
        starts = clock.as_utc(session.starts_at)
        if r.random() < 0.08:
            with clock.frozen(clock.as_utc(session.ends_at) + timedelta(minutes=10)):
                booking_rules.mark_no_show(db, site, booking.id)
        else:
            with clock.frozen(starts + timedelta(minutes=r.randint(-25, 120))):
                booking_rules.mark_arrived(db, site, booking.id)
    db.flush()
    return len(made)


def _closure(db: Session, ctx: _Ctx, schedules: dict[str, Schedule], now: datetime) -> int:
    """An ad-hoc closure of the second upcoming 儿童消化 session at 天津市儿童医院 (bookers would be notified)."""
    schedule = schedules["tj-gi"]
    upcoming = [s for s in _sessions(db, schedule.id) if clock.as_utc(s.starts_at) > now + timedelta(days=3)]
    if len(upcoming) < 2:
        return 0
    _, cancelled = schedules_rules.add_closure(db, ctx.subject("tj-lead-coordinator"), schedule.institution_id,
                                       upcoming[1].day, "专家外出参加对口帮扶义诊", schedule_id=schedule.id)
    return cancelled


def _upcoming(db: Session, ctx: _Ctx, schedules: dict[str, Schedule], now: datetime) -> int:
    r = ctx.r
    count = 0
    last_slot_done = False
    for plan in _PLANS:
        for session in _sessions(db, schedules[plan.key].id):
            starts = clock.as_utc(session.starts_at)
            if starts <= now or session.status != SessionStatus.open:
                continue
            days = (starts - now).days
            in_reserve = session.reserved_capacity > 0 and clock.as_utc(session.reserve_cutoff_at or starts) > now
            reserved = public = 0
            if (plan.institution == CY_LEAD and not last_slot_done and in_reserve
                    and starts >= now + timedelta(days=2)):
                reserved, public = session.reserved_capacity - 1, 3  # the last reserved slot, for a live demo
                last_slot_done = True
            elif in_reserve:
                top = max(session.reserved_capacity - 3, 0)
                reserved = r.randint(min(2, top), top) if days < 7 else r.randint(0, min(3, top))
                public = r.randint(0, 4) if days < 14 else r.randint(0, 1)
            else:
                public = r.randint(2, 5) if days < 7 else r.randint(0, 2)
            count += len(_fill(db, ctx, plan, session, reserved, public))
    db.flush()
    return count


def _wards(db: Session, ctx: _Ctx) -> int:
    wards = (
        ("chaoyang-lead-coordinator", CY_LEAD, "儿内科", "儿内科病区", 40, 28, CHAOYANG),
        ("tj-lead-coordinator", TJ_LEAD, "儿内科", "儿内科一病区", 45, 36, loader.TIANJIN_ALLIANCE),
        ("tj-lead-coordinator", TJ_LEAD, "小儿外科", "小儿外科病区", 30, 19, loader.TIANJIN_ALLIANCE),
        ("admin", COUNTY, "心内科", "心内科病区", 50, 39, loader.XIANGHE_ALLIANCE),
    )
    made = {}
    for username, inst, dept, name, beds, occupied, alliance in wards:
        made[(inst, name)] = beds_rules.create_ward(db, ctx.subject(username), WardIn(
            institution_id=ctx.inst[inst].id, department_id=ctx.dept(inst, dept).id, name=name, beds_total=beds,
            occupied=occupied, reserve_alliance_id=ctx.alliances[alliance].id))
    holds: Iterable[tuple[str, str, str, int, str]] = (
        ("chaoyang-community-doctor", CY_LEAD, "儿内科病区", 48, "肺炎支原体感染，社区治疗3天仍高热，拟转上级住院"),
        ("chaoyang-community-doctor", CY_LEAD, "儿内科病区", 72, "反复腹痛伴消瘦，拟住院完善检查"),
        ("tj-community-doctor", TJ_LEAD, "儿内科一病区", 48, "喘息性支气管炎反复发作"),
        ("qukou-doctor", COUNTY, "心内科病区", 24, "胸闷气短加重，心电图ST段改变"),
    )
    count = 0
    taken: set[int] = set()
    for username, inst, ward_name, hours, note in holds:
        patient_id = ctx.r.choice([p for p in ctx.patients[username] if p not in taken])
        taken.add(patient_id)
        beds_rules.reserve_bed(db, ctx.subject(username), BedReservationIn(
            ward_id=made[(inst, ward_name)].id, patient_id=patient_id, hours=hours, note=note))
        count += 1
    db.flush()
    return count


def _waitlist(db: Session, ctx: _Ctx, schedules: dict[str, Schedule]) -> None:
    today = clock.today_local()
    patient_id = ctx.patients["chaoyang-community-doctor"][3]
    waitlist.request_wait(db, ctx.subject("chaoyang-community-doctor"), WaitRequestIn(
        patient_id=patient_id, target_institution_id=ctx.inst[CY_LEAD].id, schedule_id=schedules["cy-gi"].id,
        specialty="儿童消化", earliest=today + timedelta(days=1), latest=today + timedelta(days=14), contact_by_days=2,
        note="患儿反复腹痛两月伴体重下降，社区治疗效果欠佳；家长希望两周内就诊，周一至周三上午均可。"))
    db.flush()

