"""The monthly outcome charts of chronic care (issue 20): for one registry (hypertension or type 2 diabetes), the
control rate and the follow-up completion month by month, with the 3-month outcomes and the patients under
care and lost to follow-up (chronic/outcomes.py, the Simple hypertension programme's rules), for the whole
institution or one team, village, responsible doctor or member institution (a lead institution sees its
alliances' members); a chart (the project's echarts, served from /static), the numbers as a table below it,
and the table as xlsx."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.chronic import outcome_months, outcomes, repository, service
from yilianti.exceptions import NotFound
from yilianti.kit.i18n import code_table
from yilianti.web.render import render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)

GROUPINGS = code_table("chronic.outcome_grouping", {"team": "家庭医生团队", "village": "村", "doctor": "责任医生",
                                                    "institution": "成员机构"})
KIND_LABELS = code_table("chronic.outcome_3m", {"controlled": "控制", "uncontrolled": "未控制",
                                                "unmeasured": "随访未测量", "missed": "3个月内未随访"})
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
    s, e = outcome_months.period(start, end)
    f = outcome_months.figures(db, inst, condition, by, group, s, e)
    series, groups, group, name, labels, per_group = f.series, f.groups, f.group, f.name, f.labels, f.per_group
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
        "headers": HEADERS, "pct": _pct, "built": f.built,
        "query": f"condition={condition}&by={by}&group={group}&start={s:%Y-%m}&end={e:%Y-%m}"})
