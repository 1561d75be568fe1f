"""The monthly outcome charts of chronic care (issue 20): for one registry (hypertension or type 2 diabetes), the
control rate and the follow-up completion month by month, with the 3-month outcomes and the patients under
care and lost to follow-up (chronic/outcomes.py, the Simple hypertension programme's rules), for the whole
institution or one team, village, responsible doctor or member institution (a lead institution sees its
alliances' members); a chart (the project's echarts, served from /static), the numbers as a table below it,
and the table as xlsx."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from yilianti.alliance.repository import alliances_with_role_of, current_memberships, institution_names
from yilianti.auth.deps import DB, CurrentSubject
from yilianti.chronic import outcome_months, outcomes, repository, service
from yilianti.chronic import teams as team_rules
from yilianti.exceptions import NotFound
from yilianti.kit import clock
from yilianti.kit.i18n import code_table
from yilianti.web.render import render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)

GROUPINGS = code_table("chronic.outcome_grouping", {"team": "家庭医生团队", "village": "村", "doctor": "责任医生",
                                                    "institution": "成员机构"})
KIND_LABELS = code_table("chronic.outcome_3m", {"controlled": "控制", "uncontrolled": "未控制",
                                                "unmeasured": "随访未测量", "missed": "3个月内未随访"})
MAX_MONTHS = 36


def _month(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip() + "-01") if value.strip() else None
    except ValueError:
        return None


def period(start: str, end: str) -> tuple[date, date]:
    """From the first of the start month to the end month's last day (today in the current month); the last
    12 months by default, at most `MAX_MONTHS`."""
    today = clock.today_local()
    e = _month(end) or outcomes.month_first(today)
    e = min(e, outcomes.month_first(today))
    s = _month(start) or outcomes.month_first(e, 11)
    s = max(min(s, e), outcomes.month_first(e, MAX_MONTHS - 1))
    last = min(outcomes.month_first(e, -1).toordinal() - 1, today.toordinal())
    return s, date.fromordinal(last)


def _institutions(db: Any, inst: int) -> dict[int, str]:
    """The acting institution, and the members in force of the alliances it leads."""
    ids = {inst}
    for alliance, role in alliances_with_role_of(db, inst):
        if role == "lead":
            ids |= {m.institution_id for m in current_memberships(db, alliance.id, clock.today_local())}
    names = institution_names(db, ids)
    return dict(sorted(names.items(), key=lambda kv: (kv[0] != inst, kv[1])))


def _groups(db: Any, by: str, inst: int, members: dict[int, str]) -> list[tuple[str, str]]:
    """The groups (key, name) in order, the unassigned last (keys as `outcome_months.key_of` gives them)."""
    if by == "team":
        return [(str(tm.id), tm.name) for tm in repository.teams_of(db, inst)] + [("none", "未分配团队")]
    if by == "doctor":
        return [(str(u), n) for u, n in repository.doctors_of(db, inst)] + [("none", "未指定")]
    if by == "village":
        names = dict.fromkeys(v for tm in repository.teams_of(db, inst) for v in team_rules.villages(tm.village))
        return [(v, v) for v in names] + [("none", "地址未注明服务村")]
    return [(str(i), n) for i, n in members.items()]


def _total(months: list[list[outcomes.Month]], labels: list[str]) -> list[outcomes.Month]:
    out = [outcomes.Month(label) for label in labels]
    for series in months:
        for total, m in zip(out, series, strict=True):
            for name in ("registered", "under_care", "lost", "cohort", *outcomes.OUTCOME_KINDS, "due", "done"):
                setattr(total, name, getattr(total, name) + getattr(m, name))
    return out


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


HEADERS = ("月份", "累计登记", "在管", "失访（12个月未随访）", "3个月队列", "控制", "未控制", "随访未测量",
           "3个月内未随访", "控制率", "应随访", "按期完成", "随访完成率")


@router.get("/chronic/outcomes/monthly")
def monthly(request: Request, db: DB, subject: CurrentSubject, condition: str = "hypertension", by: str = "team",
            group: str = "", start: str = "", end: str = "", format: str = "") -> Response:
    if not subject.is_clinical or subject.acting_institution_id is None:
        raise NotFound()
    inst = subject.acting_institution_id
    condition = condition if condition in repository.MEASURED else "hypertension"
    by = by if by in GROUPINGS else "team"
    s, e = period(start, end)
    members = _institutions(db, inst)
    scope = list(members) if by == "institution" else [inst]
    per_group, built = outcome_months.monthly(db, scope, condition, by, s, e)
    groups = _groups(db, by, inst, members)
    labels = [m.month for m in outcomes.months_of(s, e)]
    groups = [(k, n) for k, n in groups if k in per_group or k != "none"]
    group = group if group in dict(groups) else ""
    series = per_group.get(group) or _total([], labels) if group else _total(list(per_group.values()), labels)
    name = dict(groups).get(group) if group else ("全部" if by == "institution" else "本机构合计")
    if format == "xlsx":
        rows = [(m.month, m.registered, m.under_care, m.lost, m.cohort, m.controlled, m.uncontrolled, m.unmeasured,
                 m.missed, _pct(m.control_rate), m.due, m.done, _pct(m.completion)) for m in series]
        title = f"{t(request, service.CONDITIONS[condition])} {t(request, name or '')}"
        return xlsx_response(title, [t(request, h) for h in HEADERS], rows, "chronic-outcomes-monthly")
    chart = {"months": labels, "control": [_pct(m.control_rate) for m in series],
             "completion": [_pct(m.completion) for m in series],
             "kinds": {k: [_pct(getattr(m, k) / m.cohort) if m.cohort else None for m in series]
                       for k in outcomes.OUTCOME_KINDS}}
    latest = {k: (v[-1] if v else None) for k, v in per_group.items()}
    return render_page(request, "chronic/outcomes_monthly.html", {
        "condition": condition, "conditions": {c: service.CONDITIONS[c] for c in repository.MEASURED},
        "by": by, "groupings": GROUPINGS, "group": group, "groups": groups, "name": name, "series": series,
        "chart": chart, "latest": latest, "kinds": KIND_LABELS, "start": f"{s:%Y-%m}", "end": f"{e:%Y-%m}",
        "headers": HEADERS, "pct": _pct, "built": built,
        "query": f"condition={condition}&by={by}&group={group}&start={s:%Y-%m}&end={e:%Y-%m}"})
