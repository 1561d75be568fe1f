"""Chronic care's work lists: the overdue follow-ups (逾期未随访) per team, doctor and village with the reminders
sent and the calls made; the reminder outbox; the alarms with acknowledgement and the prefilled urgent
up-referral; the phone-call log on a follow-up. Every list on the list kit (search, dates, status, paging, xlsx)."""

from __future__ import annotations

from datetime import date
from operator import attrgetter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.chronic import alarms, outcomes, readings, reminders, repository, service
from yilianti.chronic import teams as team_rules
from yilianti.config import get_settings
from yilianti.exceptions import AppError, InvalidInput, NotFound
from yilianti.kit import clock, listing
from yilianti.kit.listing import ListParams
from yilianti.kit.repository import page
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import mask_phone, render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)


def _clinical(subject: Any) -> None:
    if not subject.is_clinical or subject.acting_institution_id is None:
        raise NotFound()


def overdue_rows(db: Any, subject: Any, rows: list[tuple[Any, Any, Any]]) -> list[dict[str, Any]]:
    """The overdue list's rows with the team, the responsible doctor, the reminders and the calls."""
    today = clock.today_local()
    ids = [f.id for f, _, _ in rows]
    sent, calls = repository.reminders_of(db, ids), repository.calls_of(db, ids)
    teams = {tm.id: tm for tm in repository.teams_of(db, subject.acting_institution_id)}
    doctors = dict(repository.doctors_of(db, subject.acting_institution_id))
    return [{"task": f, "registration": r, "patient": p, "days": (today - f.due_on).days,
             "team": teams.get(f.team_id or 0), "doctor": doctors.get(r.responsible_user_id or 0, ""),
             "reminder": sent[f.id][-1] if sent.get(f.id) else None, "calls": calls.get(f.id, [])} for f, r, p in rows]


@router.get("/chronic/overdue")
def overdue(request: Request, db: DB, subject: CurrentSubject, team_id: str = "", doctor_id: str = "",
            village: str = "", due: str = "") -> Response:
    """逾期未随访; `due=today`: with the follow-ups due today (the workbench count's list)."""
    _clinical(subject)
    inst = subject.acting_institution_id
    assert inst is not None
    teams = repository.teams_of(db, inst)
    team, doctor = opt_int(team_id), opt_int(doctor_id)
    village = village.strip()[:100]
    lp = ListParams.of(request.query_params, keep=("team_id", "doctor_id", "village", "due")).only(service.CONDITIONS)
    with_today = due == "today"
    stmt = repository.overdue_statement(subject, clock.today_local(), lp, team_id=team, doctor_id=doctor,
                                        village=village or None, with_today=with_today)
    if lp.export:
        rows = overdue_rows(db, subject, listing.export_rows(db, stmt, scalars=False))
        headers = [t(request, h) for h in ("患者", "联系电话", "病种", "家庭医生团队", "责任医生", "应随访日期",
                                            "逾期天数", "提醒", "电话随访")]
        body = [(r["patient"].name, mask_phone(r["patient"].phone), t(request, service.CONDITIONS[r["registration"].condition]),
                 r["team"].name if r["team"] else "", r["doctor"], r["task"].due_on, r["days"],
                 t(request, reminders.STATUSES[r["reminder"].status]) if r["reminder"] else "",
                 t(request, reminders.OUTCOMES[r["calls"][-1].outcome]) if r["calls"] else "") for r in rows]
        return xlsx_response(t(request, "逾期未随访"), headers, body, "chronic-overdue")
    pg = page(db, stmt, lp.page, lp.per_page, scalars=False)
    return render_page(request, "chronic/overdue.html", {
        "pg": pg, "lp": lp, "rows": overdue_rows(db, subject, pg.items), "teams": teams,
        "doctors": repository.doctors_of(db, inst), "villages": sorted({tm.village for tm in teams if tm.village}),
        "team_id": team, "doctor_id": doctor, "village": village, "with_today": with_today,
        "statuses": [(code, text) for code, text in service.CONDITIONS.items()],
        "outcomes": reminders.OUTCOMES, "states": reminders.STATUSES})


@router.get("/chronic/reminders")
def reminder_outbox(request: Request, db: DB, subject: CurrentSubject) -> Response:
    _clinical(subject)
    lp = ListParams.of(request.query_params).only(reminders.STATUSES)
    stmt = repository.reminders_statement(subject, lp)
    if lp.export:
        rows = listing.export_rows(db, stmt, scalars=False)
        headers = [t(request, h) for h in ("患者", "应随访日期", "渠道", "状态", "发送时间", "内容")]
        body = [(p.name, r.due_on, t(request, "短信"), t(request, reminders.STATUSES[r.status]), r.sent_at, r.text)
                for r, p in rows]
        return xlsx_response(t(request, "随访提醒"), headers, body, "chronic-reminders")
    pg = page(db, stmt, lp.page, lp.per_page, scalars=False)
    return render_page(request, "chronic/reminders.html", {
        "pg": pg, "lp": lp, "statuses": list(reminders.STATUSES.items())})


@router.get("/chronic/alarms")
def alarm_list(request: Request, db: DB, subject: CurrentSubject) -> Response:
    _clinical(subject)
    lp = ListParams.of(request.query_params).only(alarms.STATES)
    stmt = repository.alarms_statement(subject, lp)
    if lp.export:
        rows = listing.export_rows(db, stmt, scalars=False)
        headers = [t(request, h) for h in ("患者", "预警", "数值", "来源", "测量时间", "状态", "确认时间")]
        body = [(p.name, t(request, alarms.KINDS[a.kind]), a.value_text, t(request, alarms.SOURCES[a.source]),
                 a.measured_at, t(request, alarms.STATES["acknowledged" if a.acknowledged_at else "open"]),
                 a.acknowledged_at) for a, p in rows]
        return xlsx_response(t(request, "慢病预警"), headers, body, "chronic-alarms")
    pg = page(db, stmt, lp.page, lp.per_page, scalars=False)
    return render_page(request, "chronic/alarms.html", {
        "pg": pg, "lp": lp, "statuses": list(alarms.STATES.items()), "limits": get_settings(),
        "heads": repository.user_names(db, [a.escalated_to_user_id for a, _ in pg.items if a.escalated_to_user_id])})


@router.post("/chronic/alarms/{alarm_id}/acknowledge")
async def acknowledge(request: Request, db: DB, subject: CurrentSubject, alarm_id: int) -> Response:
    form = await request.form()
    note = form.get("note")
    alarms.acknowledge(db, subject, alarm_id, note if isinstance(note, str) else None)
    if form.get("refer") == "1":
        return RedirectResponse(alarms.referral_url(db, repository.alarm(db, alarm_id)), status_code=303)  # type: ignore[arg-type]
    return RedirectResponse("/chronic/alarms?status=open&done=acknowledged", status_code=303)


@router.get("/chronic/alarms/{alarm_id}/refer")
def refer(request: Request, db: DB, subject: CurrentSubject, alarm_id: int) -> Response:
    """The urgent up-referral form of the referral domain, prefilled from the alarm."""
    alarm = alarms.visible(db, subject, alarm_id)
    return RedirectResponse(alarms.referral_url(db, alarm), status_code=303)


def _day(value: str, default: date) -> date:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else default
    except ValueError:
        return default


@router.get("/chronic/outcomes")
def outcome_page(request: Request, db: DB, subject: CurrentSubject, start: str = "", end: str = "") -> Response:
    """The institution's 规范管理率 and 血压/血糖控制率 per team and condition, per village (the first of the teams' villages the patient's address
    names) and per responsible doctor, for a
    period (this year to today by default), and the control rates month by month (each as of that month's
    end)."""
    _clinical(subject)
    inst = subject.acting_institution_id
    assert inst is not None
    today = clock.today_local()
    s = _day(start, date(today.year, 1, 1))
    e = max(_day(end, today), s)
    s = max(s, date(e.year - 3, e.month, 1))  # at most three years, month by month
    rows, months = outcomes.report(db, [inst], s, e)
    teams = repository.teams_of(db, inst)
    by_team = outcomes.summarise(rows, lambda r: (r.team_id, r.condition))
    total = outcomes.summarise(rows, lambda r: r.condition)
    by_doctor = outcomes.summarise(rows, lambda r: (r.doctor_id, r.condition))
    names = list(dict.fromkeys(v for tm in teams for v in team_rules.villages(tm.village)))
    address = repository.addresses(db, {r.patient_id for r in rows})
    by_village = outcomes.summarise(rows, lambda r: (team_rules.village_of(address.get(r.patient_id, ""), names),
                                                     r.condition))
    team_of = attrgetter("team_id")
    smi = outcomes.smi_outcomes(db, [inst], s, e)
    tb = outcomes.tb_outcomes(db, [inst], s, e)
    smi_fields = ("regular", "stable", "high_grade", "referred")
    tb_fields = ("notified", "first_in_time", "closed", "regular", "success")
    return render_page(request, "chronic/outcomes.html", {
        "smi": outcomes.tally(smi, team_of, smi_fields), "smi_total": outcomes.tally(smi, lambda r: "all", smi_fields),
        "tb": outcomes.tally(tb, team_of, tb_fields), "tb_total": outcomes.tally(tb, lambda r: "all", tb_fields),
        "team_keys": [(tm.id, tm.name) for tm in teams],
        "start": s, "end": e, "teams": teams, "by_team": by_team, "total": total, "months": months,
        "by_doctor": by_doctor, "doctors": repository.doctors_of(db, inst), "by_village": by_village,
        "villages": names,
        "conditions": {c: service.CONDITIONS[c] for c in repository.MEASURED}})


def _readings_context(request: Request, db: Any, subject: Any) -> dict[str, Any]:
    lp = ListParams.of(request.query_params).only(readings.KINDS)
    pg = page(db, repository.readings_statement(subject, lp), lp.page, lp.per_page, scalars=False)
    return {"pg": pg, "lp": lp, "statuses": list(readings.KINDS.items())}


@router.get("/chronic/readings")
def reading_list(request: Request, db: DB, subject: CurrentSubject) -> Response:
    """Home-device readings: the upload (format on the page) and the institution's readings."""
    _clinical(subject)
    return render_page(request, "chronic/readings.html", _readings_context(request, db, subject))


@router.post("/chronic/readings")
async def reading_upload(request: Request, db: DB, subject: CurrentSubject) -> Response:
    _clinical(subject)
    form = await request.form()
    file = form.get("file")
    result, errors = None, {}
    try:
        if file is None or isinstance(file, str) or not file.filename:
            raise InvalidInput(fields={"file": "请选择要上传的文件"})
        result = readings.upload(db, subject, await file.read())
    except AppError as exc:
        db.rollback()
        if exc.status not in (403, 422):
            raise
        errors = errors_of(request, exc)
    ctx = _readings_context(request, db, subject)
    ctx.update(result=result, errors=errors)
    return render_page(request, "chronic/readings.html", ctx, status_code=422 if errors else 200)
