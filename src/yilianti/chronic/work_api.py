"""Chronic care's work through the JSON API (/api/v1/chronic/...): the overdue follow-ups (per team, doctor,
village), one follow-up read and its visit recorded (the national form's fields, classified and the next one
planned by chronic/rules.py), the phone-call log, the alarms with acknowledgement and the prefilled urgent
up-referral, device readings, and the monthly outcome figures of the charts (list; upload as CSV in the documented format with per-row errors). Member
HIS systems and device gateways post here as the pages do: the same services, so the same authorisation
(`authz.policy.require_patient`, which audits a read of a patient the institution sees through a care
relationship or grant) and the contract's errors (404, 409, 422 with `fields`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from yilianti.auth.deps import DB, Clinical
from yilianti.chronic import alarms, outcome_months, outcomes, readings, reminders, repository, service, visit
from yilianti.chronic.schemas import (
    AckIn,
    AlarmOut,
    CallIn,
    CallOut,
    FollowUpOut,
    MonthlyGroupOut,
    MonthlyOut,
    OutcomeMonthOut,
    OverdueOut,
    ReadingOut,
    RowErrorOut,
    UploadOut,
    VisitBody,
)
from yilianti.exceptions import InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id, Limit, PageNo
from yilianti.models.chronic import ChronicAlarm
from yilianti.web.render import t

router = APIRouter(prefix="/api/v1/chronic", tags=["chronic care"])

CSV_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"text/csv": {"schema": {
    "type": "string", "description": "UTF-8 (or GB18030) CSV; first row: 身份证号/resident_id, 测量时间/measured_at "
                                     "(YYYY-MM-DD HH:MM, Asia/Shanghai), 收缩压/sbp and 舒张压/dbp and/or 血糖/glucose "
                                     "(mmol/L), optionally 设备/device; at most 5000 rows"}}}}}


def _params(**values: Any) -> ListParams:
    return ListParams.of({k: str(v) for k, v in values.items() if v not in (None, "")})


def _first(db: Any, subject: Any, stmt: Any, page: int, per_page: int) -> list[Any]:
    """One page of a (row, patient) list of the acting institution: the rows."""
    if subject.acting_institution_id is None:
        raise NotFound()
    return [row[0] for row in kit.page(db, stmt, page, per_page, count=False, scalars=False).items]


def _alarm(db: Any, a: ChronicAlarm) -> AlarmOut:
    return AlarmOut.model_validate({**{k: getattr(a, k) for k in AlarmOut.model_fields if k != "referral_url"},
                                    "referral_url": alarms.referral_url(db, a)})


@router.get("/follow-ups/overdue", response_model=list[OverdueOut])
def overdue(db: DB, subject: Clinical, page: PageNo = 1, per_page: Limit = 50, team_id: Id | None = None,
            doctor_id: Id | None = None, village: str = Query(default="", max_length=100),
            condition: str = Query(default="", pattern="^(|hypertension|diabetes_t2|smi|tb)$"),
            ) -> list[OverdueOut]:
    """The acting institution's open follow-ups past their due date, most overdue first — the rows behind
    the workbench's count and the overdue page."""
    today = clock.today_local()
    stmt = repository.overdue_statement(subject, today, _params(status=condition), team_id=team_id,
                                        doctor_id=doctor_id, village=village.strip() or None)
    return [OverdueOut(follow_up=FollowUpOut.model_validate(f), condition=r.condition, patient_name=p.name,
                       days_overdue=(today - f.due_on).days)
            for f, r, p in kit.page(db, stmt, page, per_page, count=False, scalars=False).items]


@router.get("/follow-ups/{follow_up_id}", response_model=FollowUpOut)
def read_follow_up(follow_up_id: Id, db: DB, subject: Clinical) -> FollowUpOut:
    task, _reg = service.open_task(db, subject, follow_up_id)
    return FollowUpOut.model_validate(task)


@router.post("/follow-ups/{follow_up_id}", status_code=201, response_model=FollowUpOut)
def record_follow_up(follow_up_id: Id, data: VisitBody, db: DB, subject: Clinical) -> FollowUpOut:
    """Record the visit on an open follow-up; answers the next follow-up it planned (201)."""
    task, reg = service.open_task(db, subject, follow_up_id)
    values = data.model_dump(exclude={"symptoms", "danger", "social", "done_on", "medications"})
    values.update({f"social_{k}": v for k, v in data.social.items()})
    values["medications"] = data.medications
    if set(data.social) - set(visit.SOCIAL):
        raise InvalidInput(fields={"social": "请从列表中选择"})
    parsed = visit.read(reg.condition, {k: v for k, v in values.items() if v is not None},
                        {"symptoms": data.symptoms, "danger": data.danger}, data.done_on)
    return FollowUpOut.model_validate(service.record_follow_up(db, subject, follow_up_id, parsed, opened=(task, reg)))


@router.get("/follow-ups/{follow_up_id}/calls", response_model=list[CallOut])
def list_calls(follow_up_id: Id, db: DB, subject: Clinical) -> list[CallOut]:
    task, _reg = service.open_task(db, subject, follow_up_id)
    return [CallOut.model_validate(c) for c in repository.calls_of(db, [task.id]).get(task.id, [])]


@router.post("/follow-ups/{follow_up_id}/calls", status_code=201, response_model=CallOut)
def log_call(follow_up_id: Id, data: CallIn, db: DB, subject: Clinical) -> CallOut:
    return CallOut.model_validate(reminders.log_call(db, subject, follow_up_id, data.outcome, data.note))


@router.get("/alarms", response_model=list[AlarmOut])
def list_alarms(db: DB, subject: Clinical, page: PageNo = 1, per_page: Limit = 50,
                status: str = Query(default="", pattern="^(|open|acknowledged)$")) -> list[AlarmOut]:
    """The acting institution's alarms, open first, newest first."""
    return [_alarm(db, a) for a in _first(db, subject, repository.alarms_statement(subject, _params(status=status)),
                                          page, per_page)]


@router.get("/alarms/{alarm_id}", response_model=AlarmOut)
def read_alarm(alarm_id: Id, db: DB, subject: Clinical) -> AlarmOut:
    return _alarm(db, alarms.visible(db, subject, alarm_id))


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmOut)
def acknowledge(alarm_id: Id, data: AckIn, db: DB, subject: Clinical) -> AlarmOut:
    return _alarm(db, alarms.acknowledge(db, subject, alarm_id, data.note))


@router.get("/readings", response_model=list[ReadingOut])
def list_readings(db: DB, subject: Clinical, page: PageNo = 1, per_page: Limit = 50,
                  kind: str = Query(default="", pattern="^(|bp|glucose)$")) -> list[ReadingOut]:
    """Home-device readings of the acting institution's registry patients, newest first."""
    return [ReadingOut.model_validate(r) for r in _first(
        db, subject, repository.readings_statement(subject, _params(status=kind)), page, per_page)]


@router.post("/readings", status_code=201, response_model=UploadOut, openapi_extra=CSV_BODY)
async def upload_readings(request: Request, db: DB, subject: Clinical,
                          device: str | None = Query(default=None, max_length=100)) -> UploadOut:
    """A device gateway's CSV upload: each row a reading of a registry patient (by resident id); a reading past
    the urgent thresholds raises an alarm; rows that cannot be read come back with their row number."""
    if not request.headers.get("content-type", "").startswith("text/csv"):
        raise InvalidInput(fields={"file": "请以 text/csv 上传"})
    result = readings.upload(db, subject, await request.body(), device=device)
    return UploadOut(imported=result.imported, repeats=result.repeats, alarms=result.alarms,
                     errors=[RowErrorOut(row=n, field=f, message=m) for n, f, m in result.errors])


MONTH = "^([0-9]{4}-(0[1-9]|1[0-2]))?$"


def _month_out(m: outcomes.Month) -> OutcomeMonthOut:
    return OutcomeMonthOut(month=m.month, **{name: getattr(m, name) for name in outcome_months.COUNTS},
                    control_rate=m.control_rate, completion=m.completion)


@router.get("/outcomes/monthly", response_model=MonthlyOut)
def monthly_outcomes(request: Request, db: DB, subject: Clinical,
                     condition: str = Query(default="hypertension", pattern="^(hypertension|diabetes_t2)$"),
                     by: str = Query(default="team", pattern="^(team|village|doctor|institution)$"),
                     group: str = Query(default="", max_length=100,
                                        description="a key of `groups` (\"\": the whole institution)"),
                     start: str = Query(default="", pattern=MONTH, description="YYYY-MM; default 11 months before end"),
                     end: str = Query(default="", pattern=MONTH, description="YYYY-MM; default the current month"),
                     ) -> MonthlyOut:
    """The monthly outcome charts' figures (/chronic/outcomes/monthly) of the acting institution's hypertension or
    diabetes registry, by the Simple hypertension programme's rules: month by month, for the whole institution or
    one group (`by` team, village, responsible doctor, or member institution of the alliances it leads), with
    every group's last month; at most 36 months, the current one to today. Stored figures when built
    (`built_at`), otherwise computed now."""
    if subject.acting_institution_id is None:
        raise NotFound()
    s, e = outcome_months.period(start, end)
    if end and f"{e:%Y-%m}" != end:
        raise InvalidInput(fields={"end": "结束月份不能晚于本月"})
    if start and start > f"{e:%Y-%m}":
        raise InvalidInput(fields={"start": "开始月份不能晚于结束月份"})
    if start and f"{s:%Y-%m}" != start:
        raise InvalidInput(fields={"start": "最多查询36个月"})  # outcome_months.MAX_MONTHS
    f = outcome_months.figures(db, subject.acting_institution_id, condition, by, group.strip(), s, e)
    if group.strip() and f.group != group.strip():
        raise InvalidInput(fields={"group": "没有这个分组"})
    return MonthlyOut(condition=condition, by=by, group=f.group, name=t(request, f.name), start=f"{s:%Y-%m}", end=f"{e:%Y-%m}",
                      built_at=f.built, months=[_month_out(m) for m in f.series],
                      groups=[MonthlyGroupOut(key=k, name=t(request, n), latest=_month_out(f.per_group[k][-1])
                                              if f.per_group.get(k) else None) for k, n in f.groups])
