"""Scheduling pages: schedule management at the site, booking from member sites, slips, beds, sinking ratio.

Every page calls the scheduling rules (schedules, booking, waitlist, beds, sinking) or scheduling.repository (reads). Forms post back:
303 on success, the same page with field errors (422) or the domain error's status otherwise.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from yilianti.alliance.repository import institution_names
from yilianti.auth.deps import DB, Clinical, CurrentSubject, ReadDB
from yilianti.authz.subject import Subject
from yilianti.exceptions import AppError, Forbidden, InvalidInput, NotFound, parse_input, request_locale
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.i18n import label
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id
from yilianti.models.alliance import Alliance
from yilianti.models.scheduling import BookingStatus, ClinicSession, Pool, SessionStatus, Ward
from yilianti.patients import service as patients
from yilianti.scheduling import beds as beds_rules
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling import repository, rules, schedules
from yilianti.scheduling import sinking as sinking_rules
from yilianti.scheduling import waitlist as waitlist_rules
from yilianti.scheduling.repository import WAIT_STATUSES
from yilianti.scheduling.schemas import (
    BedReservationIn,
    BookingIn,
    ScheduleIn,
    TemplateIn,
    WaitRequestIn,
    WardIn,
)
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)

WEEKDAYS = [(1, "周一"), (2, "周二"), (3, "周三"), (4, "周四"), (5, "周五"), (6, "周六"), (7, "周日")]
KINDS = [("practitioner", "专家号"), ("clinic", "科室普通号"), ("device", "检查设备")]
DEVICES = [("CT", "CT"), ("MR", "MR"), ("US", "超声"), ("DR", "DR"), ("ECG", "心电")]
STATUSES = ["booked", "arrived", "no_show", "cancelled"]

# model-level validation messages → the form field they belong to
_MODEL_ERROR_FIELD = {
    "结束时间应晚于开始时间": "end_time",
    "有效期结束日期早于开始日期": "valid_to",
    "专家号需要指定医师": "practitioner_id",
    "设备号需要指定设备类型": "device_type",
}


# ------------------------------------------------------------------------------------------ helpers


def _parse(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Form values → a validated input model; errors become field-level InvalidInput."""
    return parse_input(model, data, _MODEL_ERROR_FIELD)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v).strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


def _clean(values: dict[str, str]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v != ""}


def _failed(db: Session) -> None:
    """A service call failed: undo anything it may have flushed before the page is re-rendered."""
    db.rollback()


def _is_scheduler(subject: Subject) -> bool:
    return subject.is_system_admin or (subject.acting_institution_id is not None
                                       and subject.has("institution_admin", "coordinator"))


def _require_scheduler(subject: Subject) -> int:
    if not _is_scheduler(subject) or subject.acting_institution_id is None:
        raise Forbidden("只有本院的机构管理员或转诊协调员可以管理排班")
    return subject.acting_institution_id


def _opt_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _reserve_text(request: Request, s: ClinicSession) -> str:
    if not s.reserved_capacity:
        return t(request, "无预留号源")
    if s.reserve_released_at is not None:
        return t(request, "已于 {time} 回归公共号池 {n} 个", time=clock.fmt_local(s.reserve_released_at),
                 n=s.reserve_released_count)
    return t(request, "截止 {time} 前为基层预留", time=clock.fmt_local(s.reserve_cutoff_at))


def _session_rows(request: Request, rows: list[tuple[ClinicSession, int, int]]) -> list[dict[str, Any]]:
    now = clock.now()
    out = []
    for s, fr, fp in rows:
        cancelled = s.status == SessionStatus.cancelled
        out.append({"s": s, "free_reserved": fr, "free_public": fp,
                    "booked": None if cancelled else s.capacity - fr - fp,
                    "cancelled": cancelled, "started": clock.as_utc(s.starts_at) <= now,
                    "reserve_text": _reserve_text(request, s)})
    return out


def _expert(schedule: Any) -> str:
    if schedule.practitioner is not None:
        return f"{schedule.practitioner.name} {schedule.practitioner.title}"
    if schedule.department is not None:
        return str(schedule.department.name)
    return str(schedule.name)


def _context_common(subject: Subject) -> dict[str, Any]:
    return {"is_scheduler": _is_scheduler(subject), "is_clinical": subject.is_clinical}


# ------------------------------------------------------------------------------------------ entry


@router.get("/scheduling")
def index(request: Request, db: DB, subject: CurrentSubject) -> Response:
    inst = subject.acting_institution_id
    ctx: dict[str, Any] = _context_common(subject)
    ctx["lead_alliances"] = repository.alliances_of(db, inst, lead_only=True)
    ctx["alliances"] = repository.alliances_of(db, inst)
    if subject.is_clinical:
        ctx["partners"] = [p for p in repository.partner_institutions(db, inst) if p.id != inst]
    return render_page(request, "scheduling/index.html", ctx)


# ------------------------------------------------------------------------------------------ schedules


def _schedule_form_ctx(db: Session, inst_id: Id) -> dict[str, Any]:
    return {"practitioners": repository.practitioners_for_site(db, inst_id),
            "departments": repository.departments_of(db, inst_id),
            "lead_alliances": repository.alliances_of(db, inst_id, lead_only=True),
            "kinds": KINDS, "devices": DEVICES}


@router.get("/scheduling/schedules")
def schedule_list(request: Request, db: DB, subject: CurrentSubject) -> Response:
    inst = _require_scheduler(subject)
    rows = [(s, repository.templates_of(db, s.id)) for s in repository.schedules_of(db, inst)]
    return render_page(request, "scheduling/schedules.html", {
        "rows": rows, "closures": repository.closures_of(db, inst), "weekdays": dict(WEEKDAYS),
        "alliance_names": {a.id: a.name for a in repository.alliances_of(db, inst)}})


@router.get("/scheduling/schedules/new")
def schedule_new(request: Request, db: DB, subject: CurrentSubject) -> Response:
    inst = _require_scheduler(subject)
    return render_page(request, "scheduling/schedule_form.html", {
        **_schedule_form_ctx(db, inst), "values": {"kind": "practitioner"}, "errors": {}})


@router.post("/scheduling/schedules/new")
async def schedule_create(request: Request, db: DB, subject: CurrentSubject) -> Response:
    inst = _require_scheduler(subject)
    values = await _form(request)
    try:
        data = _clean(values)
        if "reserve_share" in data:
            share = opt_int(data["reserve_share"])
            if share is None or share > 100:
                raise InvalidInput(fields={"reserve_share": "请填写0–100之间的整数百分比"})
            data["reserve_share"] = share / 100
        parsed = _parse(ScheduleIn, {**data, "institution_id": inst})
        schedule = schedules.create_schedule(db, subject, parsed)
    except AppError as exc:
        _failed(db)
        return render_page(request, "scheduling/schedule_form.html", {
            **_schedule_form_ctx(db, inst), "values": values, "errors": errors_of(request, exc)},
            422 if isinstance(exc, InvalidInput) else exc.status)
    return RedirectResponse(f"/scheduling/schedules/{schedule.id}?created=1", status_code=303)


def _own_schedule(db: Session, subject: Subject, schedule_id: Id) -> Any:
    inst = _require_scheduler(subject)
    schedule = schedules.get_schedule(db, schedule_id)
    if schedule.institution_id != inst and not subject.is_system_admin:
        raise NotFound()
    return schedule


def _schedule_page(request: Request, db: Session, subject: Subject, schedule: Any, status: int = 200,
                   **extra: Any) -> Response:
    today = clock.today_local()
    rows = repository.search_sessions(db, institution_ids=[schedule.institution_id], schedule_id=schedule.id,
                                      start=today, end=today + timedelta(days=90))
    reserve_alliance = kit.get(db, Alliance, schedule.reserve_alliance_id) if schedule.reserve_alliance_id else None
    ctx: dict[str, Any] = {
        "schedule": schedule, "templates": repository.templates_of(db, schedule.id),
        "sessions": _session_rows(request, rows), "weekdays": WEEKDAYS, "weekday_names": dict(WEEKDAYS),
        "reserve_alliance": reserve_alliance, "closures": repository.closures_of(db, schedule.institution_id),
        "expert": _expert(schedule),
        "tpl_values": {"weekday": "", "start_time": "08:00", "end_time": "11:30", "capacity": "20", "timed": "1"},
        "tpl_errors": {}, "gen_values": {"start": today.isoformat(), "end": (today + timedelta(days=27)).isoformat()},
        "gen_errors": {}, "closure_values": {}, "closure_errors": {}, "flash": None,
    }
    q = request.query_params
    if q.get("created"):
        ctx["flash"] = t(request, "排班已创建，请添加每周出诊模板并生成出诊时段")
    elif q.get("generated") is not None:
        ctx["flash"] = t(request, "已生成 {n} 个出诊时段", n=q.get("generated"))
    elif q.get("template"):
        ctx["flash"] = t(request, "出诊模板已添加")
    elif q.get("closed") is not None:
        ctx["flash"] = t(request, "停诊日已登记，当天已生成的 {n} 个出诊时段已停诊并通知预约机构", n=q.get("closed"))
    elif q.get("cancelled") is not None:
        ctx["flash"] = t(request, "已停诊，{n} 个预约已取消并通知预约机构", n=q.get("cancelled"))
    ctx.update(extra)
    return render_page(request, "scheduling/schedule.html", ctx, status)


@router.get("/scheduling/schedules/{schedule_id}")
def schedule_view(request: Request, schedule_id: Id, db: DB, subject: CurrentSubject) -> Response:
    schedule = _own_schedule(db, subject, schedule_id)
    return _schedule_page(request, db, subject, schedule)


@router.post("/scheduling/schedules/{schedule_id}/templates")
async def template_add(request: Request, schedule_id: Id, db: DB, subject: CurrentSubject) -> Response:
    schedule = _own_schedule(db, subject, schedule_id)
    values = await _form(request)
    try:
        data = _clean(values)
        data["timed"] = values.get("timed") == "1"
        schedules.add_template(db, subject, schedule.id, _parse(TemplateIn, data))
    except AppError as exc:
        _failed(db)
        schedule = _own_schedule(db, subject, schedule_id)
        return _schedule_page(request, db, subject, schedule, 422 if isinstance(exc, InvalidInput) else exc.status,
                              tpl_values=values, tpl_errors=errors_of(request, exc))
    return RedirectResponse(f"/scheduling/schedules/{schedule_id}?template=1", status_code=303)


@router.post("/scheduling/schedules/{schedule_id}/generate")
async def sessions_generate(request: Request, schedule_id: Id, db: DB, subject: CurrentSubject) -> Response:
    schedule = _own_schedule(db, subject, schedule_id)
    values = await _form(request)
    try:
        start, end = _opt_date(values.get("start")), _opt_date(values.get("end"))
        fields = {}
        if start is None:
            fields["start"] = "日期格式应为 YYYY-MM-DD"
        if end is None:
            fields["end"] = "日期格式应为 YYYY-MM-DD"
        if fields:
            raise InvalidInput(fields=fields)
        assert start is not None and end is not None
        created = schedules.generate_sessions(db, subject, schedule.id, start, end)
    except AppError as exc:
        _failed(db)
        schedule = _own_schedule(db, subject, schedule_id)
        return _schedule_page(request, db, subject, schedule, 422 if isinstance(exc, InvalidInput) else exc.status,
                              gen_values=values, gen_errors=errors_of(request, exc))
    return RedirectResponse(f"/scheduling/schedules/{schedule_id}?generated={created}", status_code=303)


@router.post("/scheduling/schedules/{schedule_id}/closures")
async def closure_add(request: Request, schedule_id: Id, db: DB, subject: CurrentSubject) -> Response:
    schedule = _own_schedule(db, subject, schedule_id)
    values = await _form(request)
    try:
        day = _opt_date(values.get("day"))
        if day is None:
            raise InvalidInput(fields={"day": "日期格式应为 YYYY-MM-DD"})
        whole_site = values.get("whole_site") == "1"
        _, cancelled = schedules.add_closure(db, subject, schedule.institution_id, day, values.get("reason", ""),
                                           None if whole_site else schedule.id)
    except AppError as exc:
        _failed(db)
        schedule = _own_schedule(db, subject, schedule_id)
        return _schedule_page(request, db, subject, schedule, 422 if isinstance(exc, InvalidInput) else exc.status,
                              closure_values=values, closure_errors=errors_of(request, exc))
    return RedirectResponse(f"/scheduling/schedules/{schedule_id}?closed={cancelled}", status_code=303)


@router.post("/scheduling/sessions/{session_id}/cancel")
async def session_cancel(request: Request, session_id: Id, db: DB, subject: CurrentSubject) -> Response:
    values = await _form(request)
    session = schedules.get_session(db, session_id)
    try:
        n = schedules.cancel_session(db, subject, session_id, values.get("reason", ""))
    except AppError as exc:
        _failed(db)
        return _session_page(request, db, subject, session_id, exc.status if exc.status != 400 else 422,
                             cancel_errors=errors_of(request, exc))
    if _is_scheduler(subject) and subject.acting_institution_id == session.schedule.institution_id:
        return RedirectResponse(f"/scheduling/schedules/{session.schedule_id}?cancelled={n}", status_code=303)
    return RedirectResponse(f"/scheduling/sessions/{session_id}", status_code=303)


# ------------------------------------------------------------------------------------------ booking


@router.get("/scheduling/book")
def book_search(request: Request, db: DB, subject: Clinical, institution_id: str = "", q: str = "",
                start: str = "", end: str = "") -> Response:
    inst = subject.acting_institution_id
    partners = repository.partner_institutions(db, inst)
    partner_ids = [p.id for p in partners]
    chosen = opt_int(institution_id)
    ids = [chosen] if chosen in partner_ids and chosen is not None else partner_ids
    d_start = _opt_date(start) or clock.today_local()
    d_end = _opt_date(end) or d_start + timedelta(days=13)
    if d_end < d_start:
        d_end = d_start
    d_end = min(d_end, d_start + timedelta(days=90))
    rows = repository.search_sessions(db, institution_ids=ids, q=q, start=d_start, end=d_end)
    sessions = []
    for r in _session_rows(request, rows):
        pools, reason = booking_rules.pools_for(db, inst, r["s"])
        sessions.append({**r, "pools": pools, "reason": reason})
    return render_page(request, "scheduling/book.html", {
        "partners": partners, "sessions": sessions, "institution_id": chosen, "q": q,
        "start": d_start.isoformat(), "end": d_end.isoformat(), "expert": _expert})


def _session_page(request: Request, db: Session, subject: Subject, session_id: Id, status: int = 200,
                  **extra: Any) -> Response:
    av = booking_rules.availability(db, subject, session_id)
    s = av.session
    q = extra.pop("q", request.query_params.get("q", ""))
    values = extra.pop("values", {})
    patient_id = opt_int(values.get("patient_id") or request.query_params.get("patient_id"))
    free: dict[str, int] = {Pool.reserved: av.free_reserved, Pool.public: av.free_public}
    usable = [p for p in av.pools if free.get(p, 0) > 0]
    site_staff = subject.acting_institution_id == s.schedule.institution_id or subject.is_system_admin
    bookable = s.status == SessionStatus.open and clock.as_utc(s.starts_at) > clock.now()
    can_book = subject.is_clinical and subject.has("doctor", "nurse", "coordinator")
    ctx: dict[str, Any] = {
        "av": av, "s": s, "schedule": s.schedule, "expert": _expert(s.schedule), "usable_pools": usable,
        "free_slots": repository.free_slots(db, session_id, usable) if usable and bookable else [],
        "reserve_text": _reserve_text(request, s), "bookable": bookable, "can_book": can_book,
        "patient": patients.picked(db, subject, patient_id) if can_book and bookable else None,
        "q": q, "values": values, "patient_id": patient_id, "errors": {}, "book_error": None,
        "offer_wait": False, "site_staff": site_staff, "is_scheduler": _is_scheduler(subject),
        "cancel_errors": {}, "bookings": [], "slots": {},
    }
    if site_staff:
        bookings = repository.session_bookings(db, session_id)
        ctx["bookings"] = bookings
        ctx["slots"] = repository.slots_by_id(db, [b.slot_id for b in bookings])
        ctx["booked_by"] = institution_names(db, {b.booked_by_institution_id for b in bookings})
    ctx.update(extra)
    return render_page(request, "scheduling/session.html", ctx, status)


@router.get("/scheduling/sessions/{session_id}")
def session_view(request: Request, session_id: Id, db: DB, subject: CurrentSubject) -> Response:
    return _session_page(request, db, subject, session_id)


@router.post("/scheduling/sessions/{session_id}/book")
async def session_book(request: Request, session_id: Id, db: DB, subject: Clinical) -> Response:
    values = await _form(request)
    try:
        patient_id = opt_int(values.get("patient_id"))
        if patient_id is None:
            raise InvalidInput(fields={"patient_id": "请选择患者"})
        slot_id = opt_int(values.get("slot_id"))
        pool = values.get("pool") or None
        data = _parse(BookingIn, {"session_id": session_id, "patient_id": patient_id, "slot_id": slot_id,
                                  "pool": None if slot_id else pool, "note": values.get("note") or None})
        booking = booking_rules.book(db, subject, data)
    except AppError as exc:
        _failed(db)
        errors = errors_of(request, exc)
        return _session_page(request, db, subject, session_id, 422 if isinstance(exc, InvalidInput) else exc.status,
                             values=values, errors=errors if exc.fields else {},
                             book_error=None if exc.fields else errors.get("_form"),
                             offer_wait=isinstance(exc, rules.SlotFull))
    return RedirectResponse(f"/bookings/{booking.id}/slip", status_code=303)


# ------------------------------------------------------------------------------------------ bookings


def _booking_ctx(request: Request, db: Session, subject: Subject, booking_id: Id) -> dict[str, Any]:
    booking, session, patient, slot = booking_rules.get_booking(db, subject, booking_id)
    rid = repository.resident_ids(db, [patient.id]).get(patient.id)
    names = institution_names(db, {booking.booked_by_institution_id})
    site = session.schedule.institution
    return {"booking": booking, "s": session, "schedule": session.schedule, "patient": patient, "slot": slot,
            "resident_id": rid, "booked_by": names.get(booking.booked_by_institution_id, ""), "site": site,
            "expert": _expert(session.schedule),
            "site_staff": subject.acting_institution_id == site.id or subject.is_system_admin}


@router.get("/bookings/{booking_id}/slip")
def booking_slip(request: Request, booking_id: Id, db: DB, subject: CurrentSubject) -> Response:
    return render_page(request, "scheduling/slip.html", _booking_ctx(request, db, subject, booking_id))


def _booking_page(request: Request, db: Session, subject: Subject, booking_id: Id, status: int = 200,
                  **extra: Any) -> Response:
    ctx = _booking_ctx(request, db, subject, booking_id)
    booking, s = ctx["booking"], ctx["s"]
    alternatives = []
    if booking.status == BookingStatus.booked:
        rows = repository.search_sessions(db, institution_ids=[s.schedule.institution_id], schedule_id=s.schedule_id,
                                          start=clock.today_local(), end=clock.today_local() + timedelta(days=60))
        alternatives = [r for r in _session_rows(request, rows)
                        if r["s"].id != s.id and not r["cancelled"] and not r["started"]]
    ctx.update({"alternatives": alternatives, "errors": {}, "error": None, "values": {}, "today": clock.today_local(),
                "can_mark": ctx["site_staff"] and booking.status == BookingStatus.booked})
    flash = request.query_params.get("done")
    if flash:
        ctx["flash"] = t(request, {"cancelled": "预约已取消，号源已释放", "arrived": "已登记到诊",
                                   "no_show": "已登记爽约", "rescheduled": "已改约"}.get(flash, ""))
    ctx.update(extra)
    return render_page(request, "scheduling/booking.html", ctx, status)


@router.get("/bookings/{booking_id}")
def booking_view(request: Request, booking_id: Id, db: DB, subject: CurrentSubject) -> Response:
    return _booking_page(request, db, subject, booking_id)


async def _booking_action(request: Request, db: Session, subject: Subject, booking_id: Id, action: str) -> Response:
    values = await _form(request)
    try:
        if action == "cancel":
            booking_rules.cancel(db, subject, booking_id, values.get("reason", ""))
            target = booking_id
        elif action == "reschedule":
            session_id = opt_int(values.get("session_id"))
            if session_id is None:
                raise InvalidInput(fields={"session_id": "请选择改约的出诊时段"})
            target = booking_rules.reschedule(db, subject, booking_id, session_id).id
        elif action == "arrived":
            booking_rules.mark_arrived(db, subject, booking_id, values.get("arrival_reason"))
            target = booking_id
        else:
            booking_rules.mark_no_show(db, subject, booking_id)
            target = booking_id
    except AppError as exc:
        _failed(db)
        if exc.status == 404:
            raise
        errors = errors_of(request, exc)
        return _booking_page(request, db, subject, booking_id, 422 if isinstance(exc, InvalidInput) else exc.status,
                             errors=errors if exc.fields else {}, error=None if exc.fields else errors["_form"],
                             values=values)
    if action == "reschedule":
        return RedirectResponse(f"/bookings/{target}/slip", status_code=303)
    return RedirectResponse(f"/bookings/{target}?done={action}", status_code=303)


@router.post("/bookings/{booking_id}/cancel")
async def booking_cancel(request: Request, booking_id: Id, db: DB, subject: CurrentSubject) -> Response:
    return await _booking_action(request, db, subject, booking_id, "cancel")


@router.post("/bookings/{booking_id}/reschedule")
async def booking_reschedule(request: Request, booking_id: Id, db: DB, subject: Clinical) -> Response:
    return await _booking_action(request, db, subject, booking_id, "reschedule")


@router.post("/bookings/{booking_id}/arrive")
async def booking_arrive(request: Request, booking_id: Id, db: DB, subject: CurrentSubject) -> Response:
    return await _booking_action(request, db, subject, booking_id, "arrived")


@router.post("/bookings/{booking_id}/no-show")
async def booking_no_show(request: Request, booking_id: Id, db: DB, subject: CurrentSubject) -> Response:
    return await _booking_action(request, db, subject, booking_id, "no_show")


@router.get("/scheduling/bookings")
def site_bookings(request: Request, db: DB, reads: ReadDB, subject: CurrentSubject, tab: str = "made",
                  day: str = "") -> Response:
    if subject.acting_institution_id is None:
        raise Forbidden("请先选择执业机构")
    made_here = tab != "incoming"
    tab = "made" if made_here else "incoming"
    d = _opt_date(day)
    lp = ListParams.of(request.query_params, keep=("tab", "day")).only(STATUSES)
    pg = booking_rules.bookings_page(db, subject, lp, made_here=made_here, day=d, reads=reads)
    rows = pg.items
    slots = repository.slots_by_id(reads, [bk.slot_id for bk, _, _ in rows])
    names = institution_names(reads, {bk.booked_by_institution_id for bk, _, _ in rows})
    if lp.export:
        head = ["就诊时间", "预约号", "患者", "专家 / 科室", "就诊医院" if made_here else "预约机构", "号源池", "状态"]
        body = [((slots[bk.slot_id].starts_at if bk.slot_id in slots and slots[bk.slot_id].starts_at else s.starts_at),
                 bk.number, p.name, _expert(s.schedule),
                 s.schedule.institution.name if made_here else names.get(bk.booked_by_institution_id, ""),
                 t(request, "pool." + bk.pool), t(request, "booking." + bk.status)) for bk, s, p in rows]
        return xlsx_response(t(request, "本院预约"), [t(request, h) for h in head], body, "bookings")
    counts = booking_rules.site_booking_counts(reads, subject, lp, made_here=made_here, day=d)
    return render_page(request, "scheduling/bookings.html", {
        "rows": rows, "pg": pg, "lp": lp, "counts": counts, "total": sum(counts.values()), "tab": tab,
        "day": d.isoformat() if d else "", "status": lp.status, "statuses": STATUSES,
        "status_options": [(s, "booking." + s) for s in STATUSES],
        "slots": slots, "booked_by": names, "expert": _expert, "replica_max_lag": reads.info.get("replica_max_lag")})


# ------------------------------------------------------------------------------------------ wait-list


WAIT_HEAD = ("患者", "申请机构", "目标医院", "排班 / 专业", "期望日期", "联系时限", "状态", "备注", "申请时间")


def _waitlist_page(request: Request, db: Session, subject: Subject, status: int = 200, **extra: Any) -> Response:
    """The wait-list on the list kit: one tab for the requests to arrange here (incoming), one for those sent
    (outgoing); search, request days, status, paging with the total and the xlsx export."""
    lp = ListParams.of(request.query_params, keep=("tab",))
    tab = "outgoing" if lp.extra == (("tab", "outgoing"),) else "incoming"
    lp = replace(lp, extra=(("tab", tab),))
    pg = waitlist_rules.waitlist_page(db, subject, lp, incoming=tab == "incoming")
    requests = pg.items
    names = repository.requests_with_names(db, requests)  # type: ignore[arg-type]
    sched_names = repository.schedule_names(db, {r.schedule_id for r, _ in requests})
    if lp.export:
        locale = request_locale(request)
        body = [(p.name, names.get(r.requested_by_institution_id, ""), names.get(r.target_institution_id, ""),
                 " ".join(x for x in (sched_names.get(r.schedule_id or 0, ""), label("specialty", r.specialty, locale))
                          if x), " – ".join(d.isoformat() for d in (r.earliest, r.latest) if d), r.contact_by,
                 t(request, "waitlist." + r.status), r.note or r.closed_reason or "", r.created_at)
                for r, p in requests]
        return xlsx_response(t(request, "候补登记"), [t(request, h) for h in WAIT_HEAD], body, "waitlist")
    choices: dict[int, list[dict[str, Any]]] = {}
    today = clock.today_local()
    for req, _ in requests:
        if req.status != "waiting":
            continue
        start = max(req.earliest or today, today)
        end = max(req.latest or start + timedelta(days=27), start)
        rows = repository.search_sessions(db, institution_ids=[req.target_institution_id], schedule_id=req.schedule_id,
                                          q="" if req.schedule_id else (req.specialty or ""), start=start, end=end,
                                          limit=50)
        choices[req.id] = [r for r in _session_rows(request, rows)
                           if not r["cancelled"] and not r["started"] and r["free_reserved"] + r["free_public"] > 0]
    q = extra.pop("q", request.query_params.get("q", ""))
    values = extra.pop("values", {})
    ctx: dict[str, Any] = {
        "rows": requests, "pg": pg, "lp": lp, "tab": tab, "statuses": [(s, "waitlist." + s) for s in WAIT_STATUSES],
        "counts": waitlist_rules.waiting_counts(db, subject), "names": names, "sched_names": sched_names,
        "choices": choices, "now": clock.now(), "as_utc": clock.as_utc, "expert": _expert,
        "partners": [p for p in repository.partner_institutions(db, subject.acting_institution_id)
                     if p.id != subject.acting_institution_id],
        "patient": patients.picked(db, subject, opt_int(values.get("patient_id"))),
        "q": q, "values": values, "errors": {}, "row_errors": {},
    }
    if request.query_params.get("created"):
        ctx["flash"] = t(request, "候补请求已登记，对方将在联系时限内联系患者")
    elif request.query_params.get("closed"):
        ctx["flash"] = t(request, "候补请求已关闭")
    ctx.update(extra)
    return render_page(request, "scheduling/waitlist.html", ctx, status)


@router.get("/scheduling/waitlist")
def waitlist(request: Request, db: DB, subject: Clinical) -> Response:
    return _waitlist_page(request, db, subject)


@router.post("/scheduling/waitlist")
async def waitlist_add(request: Request, db: DB, subject: Clinical) -> Response:
    values = await _form(request)
    try:
        data = _clean(values)
        data.pop("from_session", None)
        req = waitlist_rules.request_wait(db, subject, _parse(WaitRequestIn, data))
    except AppError as exc:
        _failed(db)
        errors = errors_of(request, exc)
        session_id = opt_int(values.get("from_session"))
        if session_id is not None:
            return _session_page(request, db, subject, session_id, 422 if exc.fields else exc.status,
                                 values=values, book_error=errors.get("_form") or "; ".join(errors.values()),
                                 offer_wait=True)
        return _waitlist_page(request, db, subject, 422 if isinstance(exc, InvalidInput) else exc.status,
                              values=values, errors=errors, q=values.get("q", ""))
    return RedirectResponse(f"/scheduling/waitlist?created={req.id}", status_code=303)


@router.post("/scheduling/waitlist/{request_id}/book")
async def waitlist_book(request: Request, request_id: Id, db: DB, subject: Clinical) -> Response:
    values = await _form(request)
    try:
        session_id = opt_int(values.get("session_id"))
        if session_id is None:
            raise InvalidInput(fields={"session_id": "请选择出诊时段"})
        booking = waitlist_rules.book_from_request(db, subject, request_id, session_id)
    except AppError as exc:
        _failed(db)
        if exc.status == 404:
            raise
        errors = errors_of(request, exc)
        return _waitlist_page(request, db, subject, 422 if isinstance(exc, InvalidInput) else exc.status,
                              row_errors={request_id: errors.get("_form") or "; ".join(errors.values())})
    return RedirectResponse(f"/bookings/{booking.id}/slip", status_code=303)


@router.post("/scheduling/waitlist/{request_id}/close")
async def waitlist_close(request: Request, request_id: Id, db: DB, subject: Clinical) -> Response:
    values = await _form(request)
    try:
        waitlist_rules.close_request(db, subject, request_id, values.get("reason", ""))
    except AppError as exc:
        _failed(db)
        if exc.status == 404:
            raise
        errors = errors_of(request, exc)
        return _waitlist_page(request, db, subject, 422 if isinstance(exc, InvalidInput) else exc.status,
                              row_errors={request_id: errors.get("_form") or "; ".join(errors.values())})
    return RedirectResponse("/scheduling/waitlist?closed=1", status_code=303)


# ------------------------------------------------------------------------------------------ beds


def _beds_page(request: Request, db: Session, subject: Subject, status: int = 200, **extra: Any) -> Response:
    inst = subject.acting_institution_id
    own = [w for w, _ in repository.wards_view(db, inst)] if inst else []
    partner_ids = {p.id for p in repository.partner_institutions(db, inst)} - {inst}
    others = [(w, name, beds_rules.bed_pools_for(db, inst, w)) for w, name in repository.wards_view(db)
              if w.institution_id in partner_ids]
    reservations = beds_rules.reservations_of(db, subject) if inst else []
    inst_ids: set[int | None] = {r.requested_by_institution_id for r, _, _ in reservations}
    names = institution_names(db, inst_ids | {w.institution_id for _, w, _ in reservations})
    q = extra.pop("q", request.query_params.get("q", ""))
    values = extra.pop("values", {})
    can_reserve = subject.is_clinical and subject.has("doctor", "nurse", "coordinator")
    ctx: dict[str, Any] = {
        "own": own, "others": others, "reservations": reservations, "names": names,
        "is_scheduler": _is_scheduler(subject), "can_reserve": can_reserve,
        "lead_alliances": repository.alliances_of(db, inst, lead_only=True), "departments":
        repository.departments_of(db, inst) if inst else [], "free_of": _free_beds,
        "patient": patients.picked(db, subject, opt_int(values.get("patient_id"))) if can_reserve else None,
        "q": q, "values": values, "ward_values": extra.pop("ward_values", {}), "ward_errors": {}, "res_errors": {},
        "occ_errors": {},
    }
    ctx.update(extra)
    return render_page(request, "scheduling/beds.html", ctx, status)


def _free_beds(w: Ward) -> dict[str, int]:
    free_reserved = max(min(w.reserved_beds - w.reserved_held,
                            w.beds_total - w.occupied - w.reserved_held - w.public_held), 0)
    free_public = max(w.beds_total - w.occupied - w.public_held - w.reserved_beds, 0)
    return {"reserved": free_reserved, "public": free_public}


@router.get("/scheduling/beds")
def beds(request: Request, db: DB, subject: CurrentSubject) -> Response:
    return _beds_page(request, db, subject)


@router.post("/scheduling/wards")
async def ward_create(request: Request, db: DB, subject: CurrentSubject) -> Response:
    inst = _require_scheduler(subject)
    values = await _form(request)
    try:
        data = _clean(values)
        if "reserve_share" in data:
            share = opt_int(data["reserve_share"])
            if share is None or share > 100:
                raise InvalidInput(fields={"reserve_share": "请填写0–100之间的整数百分比"})
            data["reserve_share"] = share / 100
        beds_rules.create_ward(db, subject, _parse(WardIn, {**data, "institution_id": inst}))
    except AppError as exc:
        _failed(db)
        return _beds_page(request, db, subject, 422 if isinstance(exc, InvalidInput) else exc.status,
                          ward_values=values, ward_errors=errors_of(request, exc))
    return RedirectResponse("/scheduling/beds", status_code=303)


@router.post("/scheduling/wards/{ward_id}/occupied")
async def ward_occupied(request: Request, ward_id: Id, db: DB, subject: CurrentSubject) -> Response:
    values = await _form(request)
    try:
        occupied = opt_int(values.get("occupied"))
        if occupied is None:
            raise InvalidInput(fields={"occupied": "应为整数"})
        beds_rules.set_occupied(db, subject, ward_id, occupied)
    except AppError as exc:
        _failed(db)
        if exc.status == 404:
            raise
        errors = errors_of(request, exc)
        return _beds_page(request, db, subject, 422 if isinstance(exc, InvalidInput) else exc.status,
                          occ_errors={ward_id: errors.get("occupied") or errors.get("_form")})
    return RedirectResponse("/scheduling/beds", status_code=303)


@router.post("/scheduling/bed-reservations")
async def bed_reserve(request: Request, db: DB, subject: Clinical) -> Response:
    values = await _form(request)
    try:
        data = _clean(values)
        data.pop("q", None)
        if "patient_id" not in data:
            raise InvalidInput(fields={"patient_id": "请选择患者"})
        beds_rules.reserve_bed(db, subject, _parse(BedReservationIn, data))
    except AppError as exc:
        _failed(db)
        errors = errors_of(request, exc)
        return _beds_page(request, db, subject, 422 if isinstance(exc, InvalidInput) else exc.status,
                          values=values, res_errors=errors, q=values.get("q", ""))
    return RedirectResponse("/scheduling/beds?reserved=1", status_code=303)


@router.post("/scheduling/bed-reservations/{reservation_id}/{action}")
def bed_reservation_action(request: Request, reservation_id: Id, action: str, db: DB,
                           subject: CurrentSubject) -> Response:
    if action == "admit":
        beds_rules.admit_reservation(db, subject, reservation_id)
    elif action == "release":
        beds_rules.release_reservation(db, subject, reservation_id)
    else:
        raise NotFound()
    return RedirectResponse("/scheduling/beds", status_code=303)


# ------------------------------------------------------------------------------------------ sinking ratio


@router.get("/scheduling/sinking")
def sinking(request: Request, db: DB, subject: CurrentSubject, alliance_id: str = "", start: str = "",
            end: str = "") -> Response:
    mine = repository.alliances_of(db, subject.acting_institution_id)
    chosen = opt_int(alliance_id) or (mine[0].id if mine else None)
    alliance = kit.get(db, Alliance, chosen) if chosen else None
    if chosen is not None and alliance is None:
        raise NotFound()
    if alliance is not None and not repository.can_see_alliance_figures(db, subject, alliance.id):
        raise Forbidden("只有该医联体的成员或管理员可以查看")
    today = clock.today_local()
    d_start = _opt_date(start) or (today.replace(day=1) - timedelta(days=150)).replace(day=1)
    d_end = _opt_date(end) or today + timedelta(days=60)
    months = sinking_rules.sinking_by_month(db, alliance.id, d_start, d_end) if alliance else []
    chart = {"months": [m.month for m in months],
             "ratio": [round(m.sinking_ratio * 100, 1) if m.sinking_ratio is not None else None for m in months],
             "use": [round(m.reserve_use * 100, 1) if m.reserve_use is not None else None for m in months]}
    return render_page(request, "scheduling/sinking.html", {
        "alliances": mine, "alliance": alliance, "months": months, "start": d_start.isoformat(),
        "end": d_end.isoformat(), "chart": chart,
        "share": alliance.slot_reserve_share if alliance else None})
