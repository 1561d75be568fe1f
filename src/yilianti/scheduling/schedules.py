"""Schedules as a hospital keeps them: schedules, weekly templates, generated sessions and their slots,
holidays (closures) and stopping a clinic (停诊: its bookings cancelled, patients told)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from yilianti.alliance.repository import membership_in_force
from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import (
    Alliance,
    Department,
    Institution,
    MemberRole,
)
from yilianti.models.scheduling import (
    BookingStatus,
    ClinicSession,
    Closure,
    Pool,
    Schedule,
    ScheduleTemplate,
    SessionStatus,
)
from yilianti.models.workforce import Practitioner
from yilianti.notifications.service import notify
from yilianti.scheduling import repository as repo
from yilianti.scheduling.rules import (
    _require_scheduler,
    _reserve_positions,
    reserved_count,
)
from yilianti.scheduling.schemas import (
    ScheduleIn,
    TemplateIn,
)


def create_schedule(db: Session, subject: Subject, data: ScheduleIn) -> Schedule:
    _require_scheduler(subject, data.institution_id)
    fields: dict[str, str] = {}
    if kit.get(db, Institution, data.institution_id) is None:
        fields["institution_id"] = "机构不存在"
    if data.practitioner_id is not None and kit.get(db, Practitioner, data.practitioner_id) is None:
        fields["practitioner_id"] = "医师不存在"
    if data.department_id is not None:
        dept = kit.get(db, Department, data.department_id)
        if dept is None or dept.institution_id != data.institution_id:
            fields["department_id"] = "科室不属于该机构"
    if data.reserve_alliance_id is not None:
        m = membership_in_force(db, data.reserve_alliance_id, data.institution_id, clock.today_local())
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
    schedule = repo.schedule_loaded(db, schedule_id)
    if schedule is None:
        raise NotFound()
    return schedule


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
    cancelled = 0
    for session in repo.open_sessions_on(db, institution_id, day, schedule_id):
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
        alliance = kit.get(db, Alliance, schedule.reserve_alliance_id)
        if alliance is not None:
            share = share if share is not None else alliance.slot_reserve_share
            cutoff_hours = alliance.reserve_cutoff_hours
    closed = repo.closed_days(db, schedule.institution_id, start, end)
    existing = {clock.as_utc(e) for e in repo.session_starts(db, schedule_id)}
    created = 0
    day = start
    templates = repo.templates_of(db, schedule_id)
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
    repo.insert_slots(db, rows)


def get_session(db: Session, session_id: int) -> ClinicSession:
    session = repo.session_loaded(db, session_id)
    if session is None:
        raise NotFound()
    return session


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
    bookings = repo.booked_in_session(db, session_id)
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
    repo.fill_session(db, session_id)  # nothing more to book
    audit.record(db, subject, "cancel", "clinic_session", session_id, reason=reason.strip(),
                 detail={"bookings_cancelled": len(bookings)})
    return len(bookings)
