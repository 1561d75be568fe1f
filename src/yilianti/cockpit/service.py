"""The cockpit's figures: each indicator of the library for an alliance and a period, by month, against its
target — green when met, amber within a tenth of it, red beyond — with the trend of the last two months.

Who sees an alliance's cockpit: its members, its administrators and system administrators (the same rule as
every alliance figure, `scheduling.repository.can_see_alliance_figures`). The figures are aggregates; the
row ids behind them are only handed to the drill-down, which goes through each row's own access rule.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.cockpit import repository, rollup
from yilianti.cockpit.filters import focus_of, period
from yilianti.cockpit.measures import MEASURES, Event, Scope, narrow, scope_of, splittable, total
from yilianti.cockpit.schemas import FigureOut, FiguresOut
from yilianti.db import read_session
from yilianti.exceptions import Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import Alliance
from yilianti.models.auth import Role
from yilianti.models.cockpit import Indicator, IndicatorFigure, IndicatorTarget
from yilianti.scheduling.repository import can_see_alliance_figures

AMBER_BAND = 0.10  # within 10 % of the target: amber


def months_between(start: date, end: date) -> list[str]:
    out, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


@dataclass
class Figure:
    """One indicator for one alliance and period."""

    indicator: Indicator
    value: float | None
    by_month: dict[str, float | None]
    numerator: float | None = None
    denominator: float | None = None
    target: float | None = None
    target_source: str | None = None
    status: str | None = None  # green | amber | red | None (no target, or no direction)
    trend: str | None = None  # up | down | flat | None
    row_ids: dict[str, list[int]] = field(default_factory=dict)  # measure → the rows counted
    figure: IndicatorFigure | None = None  # an imported indicator: the entry shown, with its source and evidence
    note: str | None = None  # why there is no value under a member or department filter
    events: dict[str, list[Event]] = field(default_factory=dict)  # measure → its events (the drill-down's rows)

    @property
    def series(self) -> list[float | None]:
        return list(self.by_month.values())


def rag(value: float | None, target: float | None, direction: str) -> str | None:
    if value is None or target is None or direction == "none":
        return None
    if direction == "up":
        if value >= target:
            return "green"
        return "amber" if value >= target * (1 - AMBER_BAND) else "red"
    if value <= target:
        return "green"
    return "amber" if value <= target * (1 + AMBER_BAND) else "red"


def trend(by_month: dict[str, float | None]) -> str | None:
    """The direction of the last two months that have a value."""
    values = [v for v in by_month.values() if v is not None]
    if len(values) < 2:
        return None
    a, b = values[-2], values[-1]
    if abs(b - a) <= 1e-9 * max(1.0, abs(a)):
        return "flat"
    return "up" if b > a else "down"


def target_in_force(indicator: Indicator, targets: list[IndicatorTarget], on: date) -> tuple[float | None, str | None]:
    """The newest target of the indicator in force on `on` (targets newest first), else the library default."""
    for t in targets:
        if t.indicator_id == indicator.id and t.effective_from <= on:
            return t.value, t.source
    return indicator.default_target, indicator.target_source


def _by_month(events: list[Event], how: str, months: list[str]) -> dict[str, float | None]:
    buckets: dict[str, list[Event]] = {m: [] for m in months}
    for e in events:
        key = f"{e.day:%Y-%m}"
        if key in buckets:
            buckets[key].append(e)
    return {m: total(v, how) for m, v in buckets.items()}


def _ratio(n: float | None, d: float | None) -> float | None:
    return (n or 0.0) / d if d else None


def _growth(now: float | None, before: float | None) -> float | None:
    """(now − before) ÷ before: the growth over the same period a year before."""
    return None if now is None or not before else (now - before) / before


def year_before(day: date) -> date:
    """The same day a year before (29 February → 28 February)."""
    return day.replace(year=day.year - 1, day=min(day.day, 28) if day.month == 2 else day.day)


NOT_BY_MEMBER = "该指标只按医联体整体统计"
NOT_BY_DEPARTMENT = "该指标不按科室统计"
WHOLE_ALLIANCE = "医联体整体数据"


def compute(db: Session, alliance_id: int, start: date, end: date, *, codes: list[str] | None = None,
            member: int | None = None, department: int | None = None, rollups: bool = False) -> list[Figure]:
    """Every indicator of the library (or those in `codes`) for the alliance and period — narrowed, when given,
    to the rows involving one member (and one of its departments); an indicator whose rows cannot be split so
    finely has no value there, and says why. With `rollups`, the high-volume sums of past days come from the daily
    rollups when those days are built (cockpit/rollup.py; the same figures, without the row ids)."""
    scope = scope_of(db, alliance_id, start, end)
    covered = {id(scope): rollups and rollup.covered(db, scope)}
    earlier: list[Scope] = []  # the same period a year before, for a growth (national 10b), read when asked
    months = months_between(start, end)
    targets = repository.targets_of(db, alliance_id)
    cache: dict[tuple[int, str], list[Event]] = {}

    def events(measure: str, sc: Scope = scope) -> list[Event]:
        if (id(sc), measure) not in cache:
            raw = rollup.events(db, sc, measure, member, department) if covered[id(sc)] and measure in rollup.ROLLED \
                else MEASURES[measure][0](db, sc)
            cache[id(sc), measure] = narrow(raw, member, department)
        return cache[id(sc), measure]

    def quotient(num_m: str, den_m: str | None, sc: Scope, ms: list[str],
                 ) -> tuple[float | None, dict[str, float | None], float | None, float | None]:
        """(value, by month, numerator, denominator) of a count or a ratio over the scope."""
        num_how = MEASURES[num_m][1]
        num = events(num_m, sc)
        if den_m is None:
            return total(num, num_how), _by_month(num, num_how, ms), None, None
        den, den_how = events(den_m, sc), MEASURES[den_m][1]
        nm, dm = _by_month(num, num_how, ms), _by_month(den, den_how, ms)
        n, d = total(num, num_how), total(den, den_how)
        return _ratio(n, d), {m: _ratio(nm[m], dm[m]) for m in ms}, n, d

    figures = []
    imported = _latest_figures(db, alliance_id, start, end)
    for ind in repository.library(db):
        if codes is not None and ind.code not in codes:
            continue
        if ind.source != "computed" or ind.numerator is None:
            figures.append(_imported(ind, imported.get(ind.id, []), months, targets, end))
            figures[-1].note = WHOLE_ALLIANCE if member is not None else None
            continue
        if not all(splittable(m, member, department) for m in (ind.numerator, ind.denominator) if m):
            target, source = target_in_force(ind, targets, end)
            figures.append(Figure(ind, None, dict.fromkeys(months), target=target, target_source=source,
                                  note=NOT_BY_DEPARTMENT if all(splittable(m, member, None) for m in
                                                                (ind.numerator, ind.denominator) if m)
                                  else NOT_BY_MEMBER))
            continue
        value, by_month, n, d = quotient(ind.numerator, ind.denominator, scope, months)
        if ind.growth_of:  # this period's against the same period a year before, month by month
            if not earlier:
                earlier.append(scope_of(db, alliance_id, year_before(start), year_before(end)))
                covered[id(earlier[0])] = rollups and rollup.covered(db, earlier[0])
            before, before_by_month, _, _ = quotient(ind.numerator, ind.denominator, earlier[0],
                                                     months_between(earlier[0].start, earlier[0].end))
            value = _growth(value, before)
            by_month = {m: _growth(v, before_by_month.get(f"{int(m[:4]) - 1:04d}{m[4:]}")) for m, v in by_month.items()}
            n, d = None, None
        row_ids = {m: sorted({e.row_id for e in events(m) if e.row_id}) for m in (ind.numerator, ind.denominator) if m}
        target, source = target_in_force(ind, targets, end)
        figures.append(Figure(ind, value, by_month, n, d, target, source, rag(value, target, ind.direction),
                              trend(by_month), row_ids,
                              events={m: events(m) for m in (ind.numerator, ind.denominator) if m}))
    return figures


CACHE_SECONDS = 60.0  # a chart viewed by a room of screens is computed once a minute, not once per screen
CACHE_ENTRIES = 256
_cache: OrderedDict[tuple[Any, ...], tuple[float, list[Figure]]] = OrderedDict()
_cache_lock = threading.Lock()


def compute_cached(db: Session, alliance_id: int, start: date, end: date, *, codes: list[str] | None = None,
                   member: int | None = None, department: int | None = None) -> list[Figure]:
    """`compute` from the rollups, kept CACHE_SECONDS per process for the same question — for the JSON API and
    the wall screens, where many viewers ask the same figures (the cockpit page itself always computes: a target
    just set shows at once). The caller checks access first; the cache holds aggregates only."""
    key = (alliance_id, start, end, tuple(codes) if codes else None, member, department, clock.today_local())
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            _cache.move_to_end(key)
            return hit[1]
    figures = compute(db, alliance_id, start, end, codes=codes, member=member, department=department, rollups=True)
    with _cache_lock:
        _cache[key] = (now + CACHE_SECONDS, figures)
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return figures


MAX_CODES = 50


def figures_out(db: Session, subject: Subject, alliance_id: int, start: str = "", end: str = "", member: str = "",
                department: str = "", codes: str = "") -> FiguresOut:
    """`GET /api/v1/cockpit/figures`, from its query parameters: the access check, then `figures_of_alliance` — the
    route's answer, and its cached fast path's (cockpit/fastpath.py) in two parts."""
    return figures_of_alliance(db, require_view(db, subject, kit.get(db, Alliance, alliance_id)), start, end, member,
                               department, codes)


def figures_of_alliance(db: Session, alliance: Alliance, start: str = "", end: str = "", member: str = "",
                        department: str = "", codes: str = "") -> FiguresOut:
    """The figures of an alliance the caller may see, for the query's period, filters and indicators: those of
    `compute_cached` (read on the replica when one is set)."""
    s, e = period(start, end)
    focus = focus_of(db, alliance, member, department)
    wanted = [c for c in codes.split(",") if c] or None
    if wanted and len(wanted) > MAX_CODES:
        raise InvalidInput(fields={"codes": f"一次最多 {MAX_CODES} 个指标"})
    with read_session(db) as reads:
        out = compute_cached(reads, alliance.id, s, e, codes=wanted, member=focus.member,
                             department=focus.department)
    return FiguresOut(alliance_id=alliance.id, start=f"{s:%Y-%m}", end=f"{e:%Y-%m}", member=focus.member,
                      department=focus.department,
                      figures=[FigureOut(code=f.indicator.code, name=f.indicator.name, name_en=f.indicator.name_en,
                                         unit=f.indicator.unit, value=f.value, target=f.target, status=f.status,
                                         trend=f.trend, note=f.note, by_month=f.by_month) for f in out])


def _latest_figures(db: Session, alliance_id: int, start: date, end: date) -> dict[int, list[IndicatorFigure]]:
    """Per indicator, the figures in force for each period (a correction entered later replaces the figure of the
    same period), by period end."""
    out: dict[int, list[IndicatorFigure]] = {}
    for f in repository.in_force(repository.figures_of(db, alliance_id, start, end)):
        out.setdefault(f.indicator_id, []).append(f)
    return out


def _imported(ind: Indicator, rows: list[IndicatorFigure], months: list[str], targets: list[IndicatorTarget],
              end: date) -> Figure:
    """An imported indicator: the latest period's figure is the value; each figure also sits in the month its
    period ends."""
    by_month: dict[str, float | None] = {m: None for m in months}
    for f in rows:
        by_month[f"{f.period_end:%Y-%m}"] = f.value
    latest = rows[-1] if rows else None
    value = latest.value if latest else None
    target, source = target_in_force(ind, targets, end)
    fig = Figure(ind, value, by_month, None, None, target, source, rag(value, target, ind.direction), trend(by_month))
    fig.figure = latest
    return fig


# ------------------------------------------------------------------------------------------ access


def require_view(db: Session, subject: Subject, alliance: Alliance | None) -> Alliance:
    if alliance is None:
        raise NotFound()
    if not can_see_alliance_figures(db, subject, alliance.id):
        raise Forbidden("只有该医联体的成员、管理员或主管部门可以查看驾驶舱")
    return alliance


def can_set_targets(subject: Subject, alliance_id: int) -> bool:
    return subject.is_system_admin or alliance_id in subject.alliance_admin_of


def set_target(db: Session, subject: Subject, alliance_id: int, *, code: str, value: float, source: str,
               effective_from: date | None = None) -> IndicatorTarget:
    """A new target from `effective_from` (today by default); earlier targets stay as the history."""
    if not can_set_targets(subject, alliance_id):
        raise Forbidden("只有医联体管理员可以设置指标目标值")
    ind = repository.indicator_by_code(db, code)
    if ind is None:
        raise InvalidInput(fields={"code": "没有这个指标"})
    errors: dict[str, str] = {}
    if ind.unit == "ratio" and not 0 <= value <= 1:
        errors["value"] = "比例的目标值应在 0 到 1 之间（如 0.3 表示 30%）"
    elif value < 0:
        errors["value"] = "目标值不能为负数"
    if not source.strip():
        errors["source"] = "请注明目标值的出处（文件、会议纪要或章程条款）"
    if errors:
        raise InvalidInput(fields=errors)
    row = IndicatorTarget(indicator_id=ind.id, alliance_id=alliance_id, value=value, source=source.strip()[:200],
                          effective_from=effective_from or clock.today_local(), set_by_user_id=subject.user_id,
                          set_at=clock.now())
    db.add(row)
    db.flush()
    audit.record(db, subject, "create", "indicator_target", row.id,
                 detail={"indicator": code, "alliance_id": alliance_id, "value": value, "source": row.source,
                         "effective_from": row.effective_from.isoformat()})
    return row


def chart(figures: list[Figure], codes: list[str], locale: str) -> dict[str, Any]:
    """The monthly series of some indicators for one chart (ECharts option data)."""
    chosen = [f for f in figures if f.indicator.code in codes]
    months = list(chosen[0].by_month) if chosen else []
    return {"months": months,
            "series": [{"code": f.indicator.code,
                        "name": f.indicator.name if locale == "zh" else f.indicator.name_en,
                        "unit": f.indicator.unit,
                        "target": f.target,
                        "data": [None if v is None else round(v * 100, 1) if f.indicator.unit == "ratio" else round(v, 2)
                                 for v in f.series]} for f in chosen]}


# ------------------------------------------------------------------------------------------ imported figures


def id_span(ids: list[int]) -> str:
    """The audit row's resource id for rows stored together: one id, or first–last (the column holds 64
    characters; every id is in the detail)."""
    return str(ids[0]) if len(ids) == 1 else f"{ids[0]}-{ids[-1]}"


def can_enter_figures(db: Session, subject: Subject, alliance_id: int) -> bool:
    """The alliance's administrators, and the health commission of its region (which holds the statistics)."""
    return can_set_targets(subject, alliance_id) or (
        subject.has(Role.health_commission) and can_see_alliance_figures(db, subject, alliance_id))


@dataclass
class FigureIn:
    code: str
    period_start: date | None
    period_end: date | None
    value: float | None
    source: str
    evidence: str | None = None


def _check_figure(db: Session, data: FigureIn) -> tuple[Indicator | None, dict[str, str]]:
    ind = repository.indicator_by_code(db, data.code)
    errors: dict[str, str] = {}
    if ind is None or ind.source != "imported":
        errors["code"] = "没有这个需导入的指标" if ind is None else "该指标由平台数据计算，不能录入"
    if data.period_start is None:
        errors["period_start"] = "请填写统计期开始日期"
    if data.period_end is None:
        errors["period_end"] = "请填写统计期结束日期"
    elif data.period_start is not None and data.period_end < data.period_start:
        errors["period_end"] = "结束日期不能早于开始日期"
    if data.value is None:
        errors["value"] = "请填写数值"
    elif ind is not None and ind.unit == "yesno" and data.value not in (0, 1):
        errors["value"] = "是/否指标填 1（是）或 0（否）"
    elif ind is not None and ind.unit == "ratio" and not 0 <= data.value <= 1:
        errors["value"] = "比例填小数，如 0.65 表示 65%"
    elif data.value < 0 and not (ind is not None and ind.unit == "change"):
        errors["value"] = "数值不能为负数"
    if not data.source.strip():
        errors["source"] = "请注明数据来源"
    return ind, errors


def record_figure(db: Session, subject: Subject, alliance_id: int, data: FigureIn) -> IndicatorFigure:
    return import_figures(db, subject, alliance_id, [data])[0]


def import_figures(db: Session, subject: Subject, alliance_id: int, rows: list[FigureIn]) -> list[IndicatorFigure]:
    """All or nothing: every row is checked first; any error → InvalidInput naming each row's fields
    (`row 3: value`), and nothing is stored."""
    if not can_enter_figures(db, subject, alliance_id):
        raise Forbidden("只有医联体管理员或区域卫健委可以录入指标数据")
    checked, errors = [], {}
    for n, data in enumerate(rows, start=1):
        ind, row_errors = _check_figure(db, data)
        prefix = f"第{n}行 " if len(rows) > 1 else ""
        errors.update({(f"row{n}.{k}" if len(rows) > 1 else k): prefix + v for k, v in row_errors.items()})
        checked.append((ind, data))
    if not rows:
        errors["file"] = "文件中没有数据行"
    if errors:
        raise InvalidInput(fields=errors)
    out = []
    for ind, data in checked:
        assert ind is not None and data.period_start and data.period_end and data.value is not None
        row = IndicatorFigure(indicator_id=ind.id, alliance_id=alliance_id, period_start=data.period_start,
                              period_end=data.period_end, value=data.value, source=data.source.strip()[:200],
                              evidence=(data.evidence or "").strip() or None, entered_by_user_id=subject.user_id,
                              entered_at=clock.now())
        db.add(row)
        out.append(row)
    db.flush()
    audit.record(db, subject, "create", "indicator_figure", id_span([r.id for r in out]),
                 detail={"alliance_id": alliance_id, "rows": len(out), "ids": [r.id for r in out],
                         "indicators": sorted({d.code for _, d in checked})})
    return out
