"""Queries of scheduling (schedules, sessions, booking, beds, the wait-list, the sinking figures) for its
services, pages and API; the rules they apply are clauses from rules.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Integer,
    Select,
    and_,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, joinedload

from yilianti.alliance.repository import alliances_in_region, current_on, institution_names
from yilianti.authz.subject import Subject
from yilianti.kit import clock, listing
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Alliance, Department, Institution, MemberRole, Membership
from yilianti.models.auth import Role
from yilianti.models.patient import Patient
from yilianti.models.scheduling import (
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
from yilianti.models.workforce import PracticeSite, Practitioner
from yilianti.patients.repository import resident_ids  # noqa: F401  (moved; callers kept)
from yilianti.scheduling.rules import active_booking


def _current_membership() -> ColumnElement[bool]:
    return current_on(clock.today_local())


def partner_institutions(db: Session, institution_id: int | None) -> list[Institution]:
    """Institutions sharing a current alliance with this one (itself included), by name."""
    if institution_id is None:
        return []
    mine = select(Membership.alliance_id).where(Membership.institution_id == institution_id, _current_membership())
    ids = select(Membership.institution_id).where(Membership.alliance_id.in_(mine), _current_membership())
    return list(db.scalars(select(Institution).where(or_(Institution.id.in_(ids), Institution.id == institution_id))
                           .order_by(Institution.name)))


def alliances_of(db: Session, institution_id: int | None, *, lead_only: bool = False) -> list[Alliance]:
    """Current alliances of an institution (only those it leads, with lead_only)."""
    if institution_id is None:
        return []
    stmt = (select(Alliance).join(Membership, Membership.alliance_id == Alliance.id)
            .where(Membership.institution_id == institution_id, _current_membership()).order_by(Alliance.name))
    if lead_only:
        stmt = stmt.where(Membership.role == MemberRole.lead)
    return list(db.scalars(stmt).unique())


def is_current_member(db: Session, alliance_id: int, institution_id: int | None) -> bool:
    if institution_id is None:
        return False
    return db.scalar(select(Membership.id).where(Membership.alliance_id == alliance_id,
                                                 Membership.institution_id == institution_id,
                                                 _current_membership()).limit(1)) is not None


def can_see_alliance_figures(db: Session, subject: Subject, alliance_id: int) -> bool:
    """Aggregate figures of an alliance: its members, its administrators, system administrators, and the health
    commission of the region its lead institution lies in (which sees figures, never a patient)."""
    return (subject.is_system_admin or alliance_id in subject.alliance_admin_of
            or is_current_member(db, alliance_id, subject.acting_institution_id)
            or (subject.has(Role.health_commission)
                and alliance_id in alliances_in_region(db, subject.acting_institution_id, clock.today_local())))


def alliances_with_figures_for(db: Session, subject: Subject) -> set[int] | None:
    """Every alliance whose figures `can_see_alliance_figures` lets the subject see, in at most two queries (a list
    of alliances asks this once, not once per alliance); None: every alliance (a system administrator)."""
    if subject.is_system_admin:
        return None
    out = set(subject.alliance_admin_of)
    if subject.acting_institution_id is not None:
        out |= set(db.scalars(select(Membership.alliance_id).where(
            Membership.institution_id == subject.acting_institution_id, _current_membership())))
        if subject.has(Role.health_commission):
            out |= alliances_in_region(db, subject.acting_institution_id, clock.today_local())
    return out


def practitioners_for_site(db: Session, institution_id: int) -> list[tuple[Practitioner, bool]]:
    """Practitioners at home here, then visiting ones (multi-site practice); (practitioner, visiting)."""
    home = list(db.scalars(select(Practitioner).where(Practitioner.home_institution_id == institution_id,
                                                      Practitioner.active.is_(True)).order_by(Practitioner.name)))
    visiting_ids = select(PracticeSite.practitioner_id).where(PracticeSite.institution_id == institution_id)
    visiting = list(db.scalars(select(Practitioner).where(Practitioner.id.in_(visiting_ids),
                                                          Practitioner.home_institution_id != institution_id,
                                                          Practitioner.active.is_(True))
                               .order_by(Practitioner.name)))
    return [(p, False) for p in home] + [(p, True) for p in visiting]


def departments_of(db: Session, institution_id: int) -> list[Department]:
    return list(db.scalars(select(Department).where(Department.institution_id == institution_id,
                                                    Department.active.is_(True)).order_by(Department.name)))


def closures_of(db: Session, institution_id: int, start: date | None = None) -> list[Closure]:
    start = start or clock.today_local()
    return list(db.scalars(select(Closure).where(Closure.institution_id == institution_id, Closure.day >= start)
                           .order_by(Closure.day).limit(100)))


def search_sessions(db: Session, *, institution_ids: list[int], q: str = "", start: date | None = None,
                    end: date | None = None, schedule_id: int | None = None,
                    limit: int = 200) -> list[tuple[ClinicSession, int, int]]:
    """Sessions at any of `institution_ids` between start and end (inclusive), with (free reserved, free public).

    `q` matches the schedule's name or specialty, the expert's name or the department's name.
    """
    if not institution_ids:
        return []
    start = start or clock.today_local()
    end = end or start + timedelta(days=13)
    free = _free_slots()
    stmt = (select(ClinicSession, free.c.fr, free.c.fp)
            .join(free, free.c.session_id == ClinicSession.id)
            .join(Schedule, Schedule.id == ClinicSession.schedule_id)
            .outerjoin(Practitioner, Practitioner.id == Schedule.practitioner_id)
            .outerjoin(Department, Department.id == Schedule.department_id)
            .options(joinedload(ClinicSession.schedule).joinedload(Schedule.institution),
                     joinedload(ClinicSession.schedule).joinedload(Schedule.practitioner),
                     joinedload(ClinicSession.schedule).joinedload(Schedule.department))
            .where(Schedule.institution_id.in_(institution_ids), Schedule.active.is_(True),
                   ClinicSession.day >= start, ClinicSession.day <= end)
            .order_by(ClinicSession.starts_at, ClinicSession.id).limit(limit))
    if schedule_id:
        stmt = stmt.where(ClinicSession.schedule_id == schedule_id)
    q = q.strip()
    if q:
        stmt = stmt.where(or_(Schedule.name.contains(q), Schedule.specialty.contains(q), Practitioner.name.contains(q),
                              Department.name.contains(q)))
    return [(s, int(fr or 0), int(fp or 0)) for s, fr, fp in db.execute(stmt).unique()]


def session_bookings(db: Session, session_id: int) -> list[Booking]:
    """Bookings of one session (for its site's staff), by slot order."""
    return list(db.scalars(select(Booking).join(Slot, Slot.id == Booking.slot_id)
                           .where(Booking.session_id == session_id).order_by(Slot.seq, Booking.id)))


def slots_by_id(db: Session, ids: list[int]) -> dict[int, Slot]:
    if not ids:
        return {}
    return {s.id: s for s in db.scalars(select(Slot).where(Slot.id.in_(ids)))}


def requests_with_names(db: Session, rows: list[tuple[BookingRequest, object]]) -> dict[int, str]:
    ids: set[int | None] = set()
    for req, _ in rows:
        ids.update({req.requested_by_institution_id, req.target_institution_id})
    return institution_names(db, ids)


def schedule_names(db: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {i: n for i, n in db.execute(select(Schedule.id, Schedule.name).where(Schedule.id.in_(wanted)))}


def wards_of(db: Session, institution_id: int) -> list[Ward]:
    """The institution's wards, by name."""
    return list(db.scalars(select(Ward).where(Ward.institution_id == institution_id).order_by(Ward.name)))


def open_bookings_of_patient(db: Session, patient_id: int) -> list[tuple[Booking, ClinicSession | None]]:
    """The patient's bookings still booked, newest first, each with its clinic session (one query)."""
    return [(bk, cs) for bk, cs in db.execute(
        select(Booking, ClinicSession).outerjoin(ClinicSession, ClinicSession.id == Booking.session_id)
        .where(Booking.patient_id == patient_id, Booking.status == "booked").order_by(Booking.id.desc()))]


# ------------------------------------------------------------------------------------- booking


def free_counts(db: Session, session_id: int) -> tuple[dict[str, int], int]:
    """The session's free slots per pool, and how many are booked."""
    counts = {p: int(n) for p, n in db.execute(select(Slot.pool, func.count()).where(
        Slot.session_id == session_id, Slot.booked.is_(False)).group_by(Slot.pool)).all()}
    booked = db.scalar(select(func.count()).select_from(Slot).where(
        Slot.session_id == session_id, Slot.booked.is_(True))) or 0
    return counts, booked


def _free_slots() -> Any:
    """Per session, its free reserved (`fr`) and free public (`fp`) slots: the one count every session list shows."""
    return (select(Slot.session_id,
                   func.sum(func.cast(and_(Slot.pool == Pool.reserved, Slot.booked.is_(False)), Integer)).label("fr"),
                   func.sum(func.cast(and_(Slot.pool == Pool.public, Slot.booked.is_(False)), Integer)).label("fp"))
            .group_by(Slot.session_id).subquery())


def free_slots(db: Session, session_id: int, pools: list[str]) -> list[Slot]:
    """The session's free slots in these pools, in order."""
    return list(db.scalars(select(Slot).where(Slot.session_id == session_id, Slot.booked.is_(False),
                                              Slot.pool.in_(pools)).order_by(Slot.seq)))


def upcoming_sessions(db: Session, *, institution_id: int | None = None, schedule_id: int | None = None,
                      specialty: str | None = None, start: date | None = None, days: int = 14,
                      limit: int = 200) -> list[tuple[ClinicSession, int, int]]:
    """Sessions of active schedules from `start` (today) for `days`, with (free reserved, free public) counts."""
    start = start or clock.today_local()
    free = _free_slots()
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


def claim_slot(db: Session, session_id: int, pool: str, slot_id: int | None) -> Any:
    """Mark a free slot of the pool booked — this one, or the first free — in one conditional UPDATE …
    RETURNING (id, seq, starts_at, pool); None when there is none. On PostgreSQL "the first free" skips
    rows another booker holds (`FOR UPDATE SKIP LOCKED`)."""
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


def free_slot(db: Session, slot_id: int, *, to_public: bool = False) -> None:
    """Free a booked slot (into the public pool, with `to_public`)."""
    values: dict[str, Any] = {"booked": False}
    if to_public:
        values["pool"] = Pool.public
    db.execute(update(Slot).where(Slot.id == slot_id).values(**values))


def session_with_schedule(db: Session, session_id: int) -> ClinicSession | None:
    return db.scalar(select(ClinicSession).options(joinedload(ClinicSession.schedule))
                     .where(ClinicSession.id == session_id))


def active_booking_id(db: Session, session_id: int, patient_id: int) -> int | None:
    """The patient's active booking in the session (rules.active_booking)."""
    return db.scalar(select(Booking.id).where(*active_booking(session_id, patient_id)))


def booking_with_site(db: Session, booking_id: int) -> tuple[Booking, int] | None:
    """The booking and the institution whose session it is."""
    row = db.execute(select(Booking, Schedule.institution_id).join(ClinicSession, ClinicSession.id == Booking.session_id)
                     .join(Schedule, Schedule.id == ClinicSession.schedule_id).where(Booking.id == booking_id)).first()
    return None if row is None else (row[0], row[1])


def sessions_to_release(db: Session, now: datetime, limit: int = 1000) -> list[ClinicSession]:
    """Sessions whose reserve cut-off has passed and whose reserve is not released yet."""
    return list(db.scalars(select(ClinicSession).where(
        ClinicSession.reserve_cutoff_at.is_not(None), ClinicSession.reserve_cutoff_at <= now,
        ClinicSession.reserve_released_at.is_(None)).limit(limit)))


def release_reserved(db: Session, session_id: int) -> int:
    """The session's free reserved slots go to the public pool; how many."""
    result = db.execute(update(Slot).where(Slot.session_id == session_id, Slot.pool == Pool.reserved,
                                           Slot.booked.is_(False)).values(pool=Pool.public))
    return (result.rowcount if isinstance(result, CursorResult) else 0) or 0


def site_bookings_statement(institution_id: int | None, *, made_here: bool = True, day: date | None = None,
                            status: str | None = None, lp: ListParams | None = None,
                            columns: tuple[Any, ...] = (Booking, ClinicSession, Patient)) -> Select[Any]:
    """Bookings made by the institution (made_here) or to be received by it, latest session first; `lp` adds
    the list's search (patient name, booking number), visit-date range and status."""
    stmt = (select(*columns).select_from(Booking)
            .join(ClinicSession, ClinicSession.id == Booking.session_id)
            .join(Schedule, Schedule.id == ClinicSession.schedule_id)
            .join(Patient, Patient.id == Booking.patient_id)
            .order_by(ClinicSession.starts_at.desc(), Booking.id.desc()))
    stmt = stmt.where(Booking.booked_by_institution_id == institution_id if made_here
                      else Schedule.institution_id == institution_id)
    if day:
        stmt = stmt.where(ClinicSession.day == day)
    if status:
        stmt = stmt.where(Booking.status == status)
    if lp is not None:
        stmt = lp.apply(stmt, search=(Patient.name, Booking.number), day=ClinicSession.day, status=Booking.status)
    return stmt


def _with_schedules(stmt: Select[Any]) -> Select[Any]:
    return stmt.options(joinedload(ClinicSession.schedule).joinedload(Schedule.institution),
                        joinedload(ClinicSession.schedule).joinedload(Schedule.practitioner),
                        joinedload(ClinicSession.schedule).joinedload(Schedule.department))


def site_bookings(db: Session, institution_id: int | None, *, made_here: bool, day: date | None = None,
                  status: str | None = None, limit: int | None = None) -> list[tuple[Booking, ClinicSession, Patient]]:
    """Bookings made by the institution (made_here) or to be received by it, latest session first."""
    stmt = _with_schedules(site_bookings_statement(institution_id, made_here=made_here, day=day, status=status))
    return [(b, s, p) for b, s, p in db.execute(stmt.limit(limit)).unique()]


def count_site_bookings(db: Session, institution_id: int | None, *, made_here: bool = True, day: date | None = None,
                        status: str | None = None) -> int:
    return kit.count(db, site_bookings_statement(institution_id, made_here=made_here, day=day, status=status))


def site_bookings_page(db: Session, institution_id: int | None, lp: ListParams, *, made_here: bool = True,
                       day: date | None = None) -> kit.Page[tuple[Booking, ClinicSession, Patient]]:
    """One page of the site's bookings under the list's filters, with the total (an export: every row)."""
    plain = site_bookings_statement(institution_id, made_here=made_here, day=day, lp=lp)
    stmt = _with_schedules(plain)
    if lp.export:
        rows = [(b, s, p) for b, s, p in db.execute(stmt.limit(listing.EXPORT_MAX_ROWS)).unique()]
        return kit.Page(rows, len(rows), 1, max(len(rows), 1))
    page_no, per_page = kit.bounds(lp.page, lp.per_page)
    window = stmt.limit(per_page).offset((page_no - 1) * per_page)
    return kit.Page([(b, s, p) for b, s, p in db.execute(window).unique()], kit.count(db, plain), page_no, per_page)


def site_booking_counts(db: Session, institution_id: int | None, lp: ListParams, *, made_here: bool = True,
                        day: date | None = None) -> dict[str, int]:
    """Bookings per status under the list's other filters (the figures above the list)."""
    stmt = site_bookings_statement(institution_id, made_here=made_here, day=day, lp=replace(lp, status=""),
                                   columns=(Booking.status, func.count()))
    return {status: n for status, n in db.execute(stmt.group_by(Booking.status).order_by(None))}


# ------------------------------------------------------------------------------------- schedules and sessions


def schedule_loaded(db: Session, schedule_id: int) -> Schedule | None:
    """The schedule with its institution, practitioner and department."""
    return db.scalar(select(Schedule).options(joinedload(Schedule.institution), joinedload(Schedule.practitioner),
                                              joinedload(Schedule.department))
                     .where(Schedule.id == schedule_id))


def schedules_of(db: Session, institution_id: int) -> list[Schedule]:
    """The institution's schedules (practitioner and department loaded), by name."""
    return list(db.scalars(select(Schedule).options(joinedload(Schedule.practitioner), joinedload(Schedule.department))
                           .where(Schedule.institution_id == institution_id).order_by(Schedule.name)))


def templates_of(db: Session, schedule_id: int) -> list[ScheduleTemplate]:
    """The schedule's weekly templates by weekday and start."""
    return list(db.scalars(select(ScheduleTemplate).where(ScheduleTemplate.schedule_id == schedule_id)
                           .order_by(ScheduleTemplate.weekday, ScheduleTemplate.start_time)))


def open_sessions_on(db: Session, institution_id: int, day: date, schedule_id: int | None = None) -> list[ClinicSession]:
    """The institution's (one schedule's) open sessions on a day."""
    stmt = (select(ClinicSession).join(Schedule, Schedule.id == ClinicSession.schedule_id)
            .where(Schedule.institution_id == institution_id, ClinicSession.day == day,
                   ClinicSession.status == SessionStatus.open))
    if schedule_id is not None:
        stmt = stmt.where(ClinicSession.schedule_id == schedule_id)
    return list(db.scalars(stmt))


def closed_days(db: Session, institution_id: int, start: date, end: date) -> set[tuple[date, int | None]]:
    """(day, schedule id or None for the whole institution) of the institution's closures in [start, end]."""
    return {(c.day, c.schedule_id) for c in db.scalars(select(Closure).where(
        Closure.institution_id == institution_id, Closure.day >= start, Closure.day <= end))}


def session_starts(db: Session, schedule_id: int) -> list[datetime]:
    """When each session of the schedule starts."""
    return list(db.scalars(select(ClinicSession.starts_at).where(ClinicSession.schedule_id == schedule_id)))


def insert_slots(db: Session, rows: list[dict[str, Any]]) -> None:
    """Insert slot rows in one executemany."""
    db.execute(insert(Slot), rows)


def session_loaded(db: Session, session_id: int) -> ClinicSession | None:
    """The session with its schedule's institution, practitioner and department."""
    return db.scalar(select(ClinicSession).options(
        joinedload(ClinicSession.schedule).joinedload(Schedule.institution),
        joinedload(ClinicSession.schedule).joinedload(Schedule.practitioner),
        joinedload(ClinicSession.schedule).joinedload(Schedule.department))
        .where(ClinicSession.id == session_id))


def booked_in_session(db: Session, session_id: int) -> list[Booking]:
    """The session's bookings still to be seen (status booked)."""
    return list(db.scalars(select(Booking).where(Booking.session_id == session_id,
                                                 Booking.status == BookingStatus.booked)))


def fill_session(db: Session, session_id: int) -> None:
    """Mark every slot of the session booked: nothing more can be booked."""
    db.execute(update(Slot).where(Slot.session_id == session_id).values(booked=True))


def schedules_with_templates(db: Session) -> list[int]:
    """Ids of active schedules that have at least one template."""
    return list(db.scalars(select(Schedule.id).where(
        Schedule.active.is_(True), exists().where(ScheduleTemplate.schedule_id == Schedule.id)).order_by(Schedule.id)))


# ------------------------------------------------------------------------------------- beds


def ward_named(db: Session, institution_id: int, name: str) -> int | None:
    return db.scalar(select(Ward.id).where(Ward.institution_id == institution_id, Ward.name == name))


def hold_bed(db: Session, ward_id: int, pool: str) -> bool:
    """Hold one bed of the pool in a conditional UPDATE (a reserved bed while the reserve has one free and the
    ward a free bed; a public bed while one is free besides the reserve); whether one was held."""
    if pool == Pool.reserved:
        stmt = (update(Ward).where(Ward.id == ward_id, Ward.reserved_held < Ward.reserved_beds,
                                   Ward.occupied + Ward.reserved_held + Ward.public_held < Ward.beds_total)
                .values(reserved_held=Ward.reserved_held + 1).returning(Ward.id))
    else:
        stmt = (update(Ward).where(Ward.id == ward_id,
                                   Ward.occupied + Ward.public_held + Ward.reserved_beds < Ward.beds_total)
                .values(public_held=Ward.public_held + 1).returning(Ward.id))
    return db.execute(stmt.execution_options(synchronize_session=False)).first() is not None


def let_bed_go(db: Session, ward_id: int, pool: str, *, admitted: bool) -> None:
    """A held bed of the pool ends: freed, or (admitted) occupied."""
    col = Ward.reserved_held if pool == Pool.reserved else Ward.public_held
    values: dict[Any, Any] = {col: col - 1}
    if admitted:
        values[Ward.occupied] = Ward.occupied + 1
    db.execute(update(Ward).where(Ward.id == ward_id).values(values).execution_options(synchronize_session=False))


def expired_holds(db: Session, now: datetime, limit: int = 500) -> list[BedReservation]:
    return list(db.scalars(select(BedReservation).where(BedReservation.status == "held",
                                                        BedReservation.expires_at <= now).limit(limit)))


def wards_view(db: Session, institution_id: int | None = None) -> list[tuple[Ward, str]]:
    """Active wards (of one institution) with their institution's name, by institution and name."""
    stmt = select(Ward, Institution.name).join(Institution, Institution.id == Ward.institution_id).where(
        Ward.active.is_(True)).order_by(Institution.name, Ward.name)
    if institution_id:
        stmt = stmt.where(Ward.institution_id == institution_id)
    return [(w, n) for w, n in db.execute(stmt)]


def reservations_of(db: Session, institution_id: int | None,
                    status: str = "held") -> list[tuple[BedReservation, Ward, Patient]]:
    """Bed reservations in the institution's wards or requested by it (in one status), soonest expiry first."""
    stmt = (select(BedReservation, Ward, Patient).join(Ward, Ward.id == BedReservation.ward_id)
            .join(Patient, Patient.id == BedReservation.patient_id)
            .where(or_(Ward.institution_id == institution_id,
                       BedReservation.requested_by_institution_id == institution_id))
            .order_by(BedReservation.expires_at))
    if status:
        stmt = stmt.where(BedReservation.status == status)
    return [(r, w, p) for r, w, p in db.execute(stmt.limit(300))]


# ------------------------------------------------------------------------------------- wait-list


WAIT_STATUSES = ("waiting", "booked", "closed")


def waitlist_statement(institution_id: int | None, *, incoming: bool = True, status: str = "",
                       lp: ListParams | None = None) -> Select[Any]:
    """(request, patient) of the wait-list to the institution (incoming) or from it, in `status` when given:
    the waiting first, then by contact-by time; `lp` adds the list's search (patient name, specialty, note),
    request days and status."""
    col = BookingRequest.target_institution_id if incoming else BookingRequest.requested_by_institution_id
    columns: tuple[Any, ...] = (BookingRequest, Patient)
    stmt = select(*columns).join(Patient, Patient.id == BookingRequest.patient_id).where(col == institution_id)
    if status:
        stmt = stmt.where(BookingRequest.status == status)
    if lp is not None:
        stmt = lp.apply(stmt, search=(Patient.name, BookingRequest.specialty, BookingRequest.note),
                        day=BookingRequest.created_at, status=BookingRequest.status)
    waiting_first = case((BookingRequest.status == "waiting", 0), else_=1)
    return stmt.order_by(waiting_first, BookingRequest.contact_by, BookingRequest.id)


def waitlist(db: Session, institution_id: int | None, *, incoming: bool = True,
             status: str = "waiting") -> list[tuple[BookingRequest, Patient]]:
    """Wait-list requests to the institution (incoming) or from it (in one status), by contact-by time."""
    return [(r, p) for r, p in db.execute(waitlist_statement(institution_id, incoming=incoming, status=status))]


def waitlist_page(db: Session, institution_id: int | None, lp: ListParams, *,
                  incoming: bool = True) -> kit.Page[tuple[BookingRequest, Patient]]:
    """One page of the wait-list under the list's filters, with its total (an export: every row)."""
    stmt = waitlist_statement(institution_id, incoming=incoming, lp=lp.only(WAIT_STATUSES))
    return listing.page_or_export(db, stmt, lp, scalars=False)


def count_waitlist(db: Session, institution_id: int | None, *, incoming: bool = True, status: str = "waiting") -> int:
    return kit.count(db, waitlist_statement(institution_id, incoming=incoming, status=status))


def overdue_requests(db: Session, now: datetime, limit: int = 500) -> list[BookingRequest]:
    """Waiting requests past their contact-by time."""
    return list(db.scalars(select(BookingRequest).where(BookingRequest.status == "waiting",
                                                        BookingRequest.contact_by <= now).limit(limit)))


# ------------------------------------------------------------------------------------- sinking figures


def reserving_sessions(db: Session, alliance_id: int, start: date, end: date) -> list[tuple[int, date, int, int]]:
    """(id, day, capacity, reserved capacity) of open sessions in [start, end] reserving for the alliance."""
    return [(i, d, c, r) for i, d, c, r in db.execute(
        select(ClinicSession.id, ClinicSession.day, ClinicSession.capacity, ClinicSession.reserved_capacity)
        .join(Schedule, Schedule.id == ClinicSession.schedule_id)
        .where(Schedule.reserve_alliance_id == alliance_id, ClinicSession.day >= start,
               ClinicSession.day <= end, ClinicSession.status == SessionStatus.open))]


def taken_per_session(db: Session, alliance_id: int, start: date, end: date, *,
                      by_members: bool) -> dict[int, int]:
    """Bookings taken (booked, arrived or no-show) per session reserving for the alliance in [start, end]:
    of the reserved pool, or (by_members) made by an institution other than the session's."""
    cond = (Booking.booked_by_institution_id != Schedule.institution_id if by_members
            else Booking.pool == Pool.reserved)
    return {s: int(n) for s, n in db.execute(
        select(Booking.session_id, func.count())
        .join(ClinicSession, ClinicSession.id == Booking.session_id)
        .join(Schedule, Schedule.id == ClinicSession.schedule_id)
        .where(Schedule.reserve_alliance_id == alliance_id, cond,
               Booking.status.in_(("booked", "arrived", "no_show")),
               ClinicSession.day >= start, ClinicSession.day <= end)
        .group_by(Booking.session_id))}


def bookings_of_patient(db: Session, patient_id: int, limit: int) -> list[tuple[Booking, datetime, str, int]]:
    """(booking, session start, schedule name, site) of the patient's bookings, latest session first."""
    return [(b, s, n, i) for b, s, n, i in db.execute(
        select(Booking, ClinicSession.starts_at, Schedule.name, Schedule.institution_id)
        .join(ClinicSession, ClinicSession.id == Booking.session_id)
        .join(Schedule, Schedule.id == ClinicSession.schedule_id)
        .where(Booking.patient_id == patient_id)
        .order_by(ClinicSession.starts_at.desc()).limit(limit))]
