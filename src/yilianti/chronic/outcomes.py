"""Outcome measures of chronic care (国家基本公共卫生服务 考核指标), per patient and summed per team, institution
or alliance (the cockpit's measures use `patient_outcomes` too):

- managed (已管理人数): registrations under care enrolled on or before the period's end;
- 规范管理 (standard management): at least 4 recorded follow-ups a year, pro rata for the part of the period
  the patient was enrolled (`expected_visits`: ⌈4 × days enrolled in the period ÷ 365⌉, at least 1);
- 血压控制 / 血糖控制 (controlled): the last follow-up in the period controlled by `rules.controlled`
  (BP < 140/90 mmHg; fasting glucose < 7.0 mmol/L); a patient with no follow-up in the period is not
  controlled;
- admitted (住院): a bed reservation that ended in an admission during the period, or an inpatient stay imported
  from a member's HIS (matched to the person by resident ID) admitted during the period.

Rates: standard ÷ managed, controlled ÷ managed, admitted ÷ managed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy.orm import Session

from yilianti.chronic import repository, rules
from yilianti.chronic.rules import controlled
from yilianti.config import get_settings
from yilianti.kit import clock

VISITS_A_YEAR = 4


@dataclass(frozen=True)
class PatientOutcome:
    registration_id: int
    patient_id: int
    institution_id: int
    team_id: int | None
    condition: str
    visits: int
    expected: int
    last_visit: date | None
    controlled: bool
    admitted: bool
    doctor_id: int | None = None  # the responsible doctor (责任医生)

    @property
    def standard(self) -> bool:
        return self.visits >= self.expected


def expected_visits(enrolled_on: date, start: date, end: date) -> int:
    days = (end - max(enrolled_on, start)).days + 1
    return max(1, math.ceil(VISITS_A_YEAR * days / 365))


def _utc(day: date) -> datetime:
    return clock.as_utc(datetime.combine(day, time(0), clock.SHANGHAI))


Visit = tuple[date, int | None, int | None, float | None]  # (day, SBP, DBP, glucose)


@dataclass
class _Loaded:
    regs: list[tuple[int, int, int, int | None, str, date, int | None]]
    visits: dict[int, list[Visit]]  # by registration, in visit order
    admissions: list[tuple[int, date]]  # (patient, local day)


def _load(db: Session, institutions: list[int], start: date, end: date) -> _Loaded:
    regs = repository.registrations_managed(db, institutions, end)
    visits: dict[int, list[Visit]] = {}
    for reg_id, day, sbp, dbp, glucose in repository.visits_between(db, institutions, start, end):
        visits.setdefault(reg_id, []).append((day, sbp, dbp, glucose))
    people = sorted({r[1] for r in regs})
    admissions = [(p, clock.to_local(at).date()) for _, p, at in repository.admissions_between(
        db, people, _utc(start), _utc(end + timedelta(days=1)))]
    admissions += [(p, day) for _, p, day in repository.inpatient_admissions_between(db, people, start, end)]
    return _Loaded(regs, visits, admissions)


def _outcomes(data: _Loaded, start: date, end: date) -> list[PatientOutcome]:
    """The figures for [start, end] from rows loaded for a period that covers it."""
    admitted = {p for p, day in data.admissions if start <= day <= end}
    out = []
    for reg_id, patient_id, inst, team, condition, enrolled_on, doctor in data.regs:
        if enrolled_on > end:
            continue
        seen = [v for v in data.visits.get(reg_id, ()) if start <= v[0] <= end]
        last = seen[-1] if seen else None
        out.append(PatientOutcome(
            reg_id, patient_id, inst, team, condition, len(seen), expected_visits(enrolled_on, start, end),
            last[0] if last else None, last is not None and controlled(condition, last[1], last[2], last[3]),
            patient_id in admitted, doctor))
    return out


def patient_outcomes(db: Session, institutions: list[int], start: date, end: date) -> list[PatientOutcome]:
    """Every managed registration of the institutions with its figures for [start, end]."""
    return _outcomes(_load(db, institutions, start, end), start, end)


def report(db: Session, institutions: list[int], start: date, end: date,
           ) -> tuple[list[PatientOutcome], list[tuple[str, dict[str, Summary]]]]:
    """The figures for [start, end] per registration, and per condition from `start` to each month's end (the
    last month: to `end`), all from one read of the database."""
    data = _load(db, institutions, start, end)
    return _outcomes(data, start, end), _monthly(data, start, end)


def months_of(start: date, end: date) -> list[Month]:
    """Empty figures for each month from `start`'s to `end`'s."""
    return [Month(label) for label, _ in _month_ends(month_first(start), end)]


def _month_ends(start: date, end: date) -> list[tuple[str, date]]:
    out = []
    cursor = date(start.year, start.month, 1)
    while cursor <= end:
        nxt = date(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1)
        out.append((cursor.strftime("%Y-%m"), min(nxt - timedelta(days=1), end)))
        cursor = nxt
    return out


def _monthly(data: _Loaded, start: date, end: date) -> list[tuple[str, dict[str, Summary]]]:
    """Managed, standard and controlled per condition as of each month's end: each registration's visits are
    walked once (the last visit on or before a month's end decides its control then)."""
    ends = _month_ends(start, end)
    out: list[tuple[str, dict[str, Summary]]] = [(label, {}) for label, _ in ends]
    for reg_id, _patient, _inst, _team, condition, enrolled_on, _doctor in data.regs:
        flags = [(v[0], controlled(condition, v[1], v[2], v[3])) for v in data.visits.get(reg_id, ())]
        seen, last = 0, False
        for k, (_label, month_end) in enumerate(ends):
            while seen < len(flags) and flags[seen][0] <= month_end:
                last = flags[seen][1]
                seen += 1
            if enrolled_on > month_end:
                continue
            summary = out[k][1].setdefault(condition, Summary())
            summary.managed += 1
            summary.controlled += last
            summary.standard += seen >= expected_visits(enrolled_on, start, month_end)
    return out


@dataclass
class Summary:
    managed: int = 0
    standard: int = 0
    controlled: int = 0
    admitted: int = 0

    def rate(self, part: int) -> float | None:
        return part / self.managed if self.managed else None

    @property
    def standard_rate(self) -> float | None:
        return self.rate(self.standard)

    @property
    def control_rate(self) -> float | None:
        return self.rate(self.controlled)


def summarise(rows: Iterable[PatientOutcome], key: Callable[[PatientOutcome], Hashable],
              ) -> dict[Hashable, Summary]:
    """The rows summed per `key` (e.g. (team, condition))."""
    out: dict[Hashable, Summary] = {}
    for r in rows:
        s = out.setdefault(key(r), Summary())
        s.managed += 1
        s.standard += r.standard
        s.controlled += r.controlled
        s.admitted += r.admitted
    return out


Point = tuple[datetime, float, bool]  # (when, value, outside the target)
SBP_FLOOR = 90  # the target band's lower edge on the chart: below 90 mmHg is hypotension


def series(db: Session, registration_id: int, patient_id: int) -> tuple[list[Point], list[Point]]:
    """A patient's systolic BP and fasting glucose over time for the charts: the registration's recorded visits
    (dated at noon of the visit day) and the patient's device readings, oldest first; a point outside the
    target (`rules`) is marked."""
    s = get_settings()
    sbp: list[Point] = []
    glucose: list[Point] = []

    def add(at: datetime, systolic: int | None, sugar: float | None) -> None:
        if systolic is not None:
            sbp.append((at, float(systolic), not SBP_FLOOR <= systolic < s.chronic_target_sbp))
        if sugar is not None:
            glucose.append((at, sugar, not s.chronic_urgent_glucose_low < sugar < s.chronic_target_glucose))

    for f in repository.history(db, registration_id):
        if f.status == "done" and f.done_on is not None:
            add(clock.as_utc(datetime.combine(f.done_on, time(12), clock.SHANGHAI)), f.sbp, f.fasting_glucose)
    for r in repository.readings_of(db, patient_id):
        add(r.measured_at, r.sbp, r.glucose)
    return sorted(sbp), sorted(glucose)


def bands() -> dict[str, tuple[float, float]]:
    s = get_settings()
    return {"sbp": (SBP_FLOOR, s.chronic_target_sbp), "glucose": (s.chronic_urgent_glucose_low, s.chronic_target_glucose)}


# ------------------------------------------------- month by month, by the Simple hypertension programme's rules
# As of each month's end, for the registrations of one registry (hypertension or diabetes) in a group (a team,
# a village, a member institution, a responsible doctor); windows are calendar months, the month itself counted:
# - under care: registered within the 12 months, or seen (a recorded follow-up) within them;
# - lost to follow-up: registered before the 12 months and not seen within them;
# - the 3-month cohort: under care and registered before the 3 months; each member's 3-month outcome is
#   controlled (the last measured visit in the 3 months controlled by `rules.controlled`), uncontrolled,
#   visited without a measurement (`rules.measured`), or missed (no visit in the 3 months);
# - control rate: controlled ÷ the cohort;
# - follow-up completion: the follow-ups due in the month (not cancelled) done by its end ÷ those due.
# A registration counts in a month while under care or marked lost as of the month's end — its status then, from
# the registry's status history (`status_on`): one transferred or deceased counts in the months before, not after.


@dataclass
class Month:
    month: str
    registered: int = 0
    under_care: int = 0
    lost: int = 0
    cohort: int = 0
    controlled: int = 0
    uncontrolled: int = 0
    unmeasured: int = 0
    missed: int = 0
    due: int = 0
    done: int = 0

    @staticmethod
    def _share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def control_rate(self) -> float | None:
        return self._share(self.controlled, self.cohort)

    @property
    def completion(self) -> float | None:
        return self._share(self.done, self.due)


OUTCOME_KINDS = ("controlled", "uncontrolled", "unmeasured", "missed")
COUNTED = ("under_care", "lost")  # the statuses a registration counts in the monthly figures with

Reg = tuple[int, int, int, int | None, date, int | None, str]  # id, patient, institution, team, enrolled, doctor,
# current status
Change = tuple[date, str | None, str | None]  # a status change: effective on, from, to


def status_on(day: date, current: str, changes: list[Change]) -> str:
    """A registration's status as of `day`'s end: the last change effective by then; before its first change,
    the status that change left; with no change recorded, the current status."""
    status = (changes[0][1] or current) if changes else current
    for effective_on, _old, new in changes:
        if effective_on > day:
            break
        status = new or status
    return status


def month_first(day: date, back: int = 0) -> date:
    """The first day of `day`'s month, `back` months earlier."""
    n = day.year * 12 + day.month - 1 - back
    return date(n // 12, n % 12 + 1, 1)


@dataclass
class Programme:
    """The rows the monthly figures of one registry are counted from (`programme`)."""
    regs: list[Reg]
    changes: dict[int, list[Change]]  # each registration's status changes, oldest first
    visits: dict[int, list[Visit]]  # by registration, in visit order, from 12 months before the first month
    due: list[tuple[int, date, str, date | None, int, int]]  # follow-ups due in the period: registration, due,
    # status, done, id, institution
    ends: list[tuple[str, date]]


def programme(db: Session, institutions: list[int], condition: str, start: date, end: date) -> Programme:
    ends = _month_ends(month_first(start), end)
    regs = repository.registrations_counted(db, institutions, condition, end)
    ids = {r[0] for r in regs}
    changes: dict[int, list[Change]] = {}
    for reg_id, effective_on, old, new in repository.status_changes(db, institutions, condition, end):
        changes.setdefault(reg_id, []).append((effective_on, old, new))
    visits: dict[int, list[Visit]] = {}
    for reg_id, day, sbp, dbp, glucose in repository.visits_between(db, institutions, month_first(start, 11), end):
        if reg_id in ids:
            visits.setdefault(reg_id, []).append((day, sbp, dbp, glucose))
    due = [row for row in repository.follow_ups_due(db, institutions, month_first(start), end) if row[0] in ids]
    return Programme(regs, changes, visits, due, ends)


def monthly_by(data: Programme, condition: str, key: Callable[[Reg], Hashable]) -> dict[Hashable, list[Month]]:
    """Each group's figures month by month (`key` names a registration's group; see the rules above): each
    registration's visits are walked once."""
    out: dict[Hashable, list[Month]] = {}
    group_of: dict[int, Hashable] = {}
    counted: set[tuple[int, int]] = set()  # (registration, month) counted
    starts = [(month_first(e), month_first(e, 2), month_first(e, 11)) for _, e in data.ends]
    index = {label: k for k, (label, _) in enumerate(data.ends)}
    for reg in data.regs:
        reg_id, enrolled_on, changes = reg[0], reg[4], data.changes.get(reg[0], [])
        group_of[reg_id] = g = key(reg)
        months = out.setdefault(g, [Month(label) for label, _ in data.ends])
        visits = data.visits.get(reg_id, [])
        seen: date | None = None  # the last visit so far
        measured: tuple[date, bool] | None = None  # the last measured visit so far, controlled or not
        i = 0
        for k, (_label, month_end) in enumerate(data.ends):
            while i < len(visits) and visits[i][0] <= month_end:
                day, sbp, dbp, glucose = visits[i]
                seen = day
                if rules.measured(condition, sbp, dbp, glucose):
                    measured = (day, controlled(condition, sbp, dbp, glucose))
                i += 1
            if enrolled_on > month_end or status_on(month_end, reg[6], changes) not in COUNTED:
                continue
            counted.add((reg_id, k))
            _first, three, twelve = starts[k]
            m = months[k]
            m.registered += 1
            if enrolled_on < twelve and (seen is None or seen < twelve):
                m.lost += 1
                continue
            m.under_care += 1
            if enrolled_on >= three:
                continue
            m.cohort += 1
            if measured is not None and measured[0] >= three:
                m.controlled += measured[1]
                m.uncontrolled += not measured[1]
            elif seen is not None and seen >= three:
                m.unmeasured += 1
            else:
                m.missed += 1
    for reg_id, due_on, status, done_on, _id, _inst in data.due:
        at = index.get(f"{due_on:%Y-%m}")
        if at is None or (reg_id, at) not in counted:
            continue
        m = out[group_of[reg_id]][at]
        m.due += 1
        m.done += done_in_month(status, due_on, done_on)
    return out


def done_in_month(status: str, due_on: date, done_on: date | None) -> bool:
    """A follow-up counts as completed for the month it fell due in when it was done by that month's end."""
    return status == "done" and done_on is not None and done_on < month_first(due_on, -1)


def follow_up_completion(db: Session, institutions: list[int], start: date, end: date,
                         ) -> list[tuple[int, int, date, bool]]:
    """The follow-ups due in [start, end] at the institutions (not cancelled), each done in its month or not:
    (follow-up id, institution, due on, done in month) — the cockpit's completion rate."""
    return [(fid, inst, due_on, done_in_month(status, due_on, done_on))
            for _reg, due_on, status, done_on, fid, inst in repository.follow_ups_due(db, institutions, start, end)]


# ------------------------------------------------------------------ severe mental disorders and tuberculosis
# 严重精神障碍 (for [start, end], the registrations under care enrolled by its end):
# - 规范管理 (regular follow-up): at least 4 recorded follow-ups a year, pro rata (`expected_visits`, as above);
# - 病情稳定 (stable): the last follow-up in the period classified stable (`rules.smi_class`); none: not stable;
# - 3–5 级及时转诊: of the period's visits with a danger grade of 3–5 (`rules.SMI_REFER_GRADE`), those referred in
#   time — a referral written on the visit's form, or an up-referral of the patient the institution sent by the
#   end of the day after the visit (`SMI_REFER_DAYS`).
# 肺结核 (the registrations in any status — a closed treatment's registration may be lost or deceased):
# - 72 小时内首次入户访视: of the notifications in the period whose deadline (`rules.first_visit_soon`) fell in it
#   or was met, those whose first recorded follow-up was on or before the deadline;
# - 规则服药: of the closing assessments with a stop in the period, those judged regular (`Closing.regular`);
# - 完成疗程 (treatment success): of those, the ones cured or with the course completed.
SMI_REFER_DAYS = 1
TB_SUCCESS = ("cured", "completed")


@dataclass(frozen=True)
class SmiOutcome:
    registration_id: int
    patient_id: int
    institution_id: int
    team_id: int | None
    doctor_id: int | None
    visits: int
    expected: int
    last_class: str | None
    high_grade: int  # visits with a danger grade of 3–5
    referred: int  # of those, referred in time

    @property
    def regular(self) -> bool:
        return self.visits >= self.expected

    @property
    def stable(self) -> bool:
        return self.last_class == "stable"


def _grade(detail: dict[str, object] | None) -> int | None:
    value = (detail or {}).get("danger_grade")
    try:
        return int(value) if value is not None else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def smi_outcomes(db: Session, institutions: list[int], start: date, end: date) -> list[SmiOutcome]:
    regs = repository.registrations_managed(db, institutions, end, ("smi",))
    visits: dict[int, list[tuple[date, str | None, dict[str, object] | None, str | None]]] = {}
    for reg_id, day, cls, detail, reason in repository.smi_visits_between(db, institutions, start, end):
        visits.setdefault(reg_id, []).append((day, cls, detail, reason))
    referred_on: dict[int, list[date]] = {}
    last_day = end + timedelta(days=SMI_REFER_DAYS + 1)
    for patient, at in repository.up_referrals_sent(db, sorted({r[1] for r in regs}), institutions, _utc(start),
                                                   _utc(last_day)):
        referred_on.setdefault(patient, []).append(clock.to_local(at).date())
    out = []
    for reg_id, patient_id, inst, team, _condition, enrolled_on, doctor in regs:
        seen = visits.get(reg_id, [])
        high = [v for v in seen if (_grade(v[2]) or 0) >= rules.SMI_REFER_GRADE]
        in_time = sum(1 for day, _c, detail, reason in high if (reason or "").strip() or (detail or {}).get("referral_to")
                      or any(day <= d <= day + timedelta(days=SMI_REFER_DAYS) for d in referred_on.get(patient_id, ())))
        out.append(SmiOutcome(reg_id, patient_id, inst, team, doctor, len(seen), expected_visits(enrolled_on, start, end),
                              seen[-1][1] if seen else None, len(high), in_time))
    return out


@dataclass(frozen=True)
class TbOutcome:
    registration_id: int
    patient_id: int
    institution_id: int
    team_id: int | None
    doctor_id: int | None
    notified: bool  # a notification counted in the period
    first_in_time: bool  # its first home visit within 72 h
    closed: bool  # a closing assessment with a stop in the period
    regular: bool
    success: bool  # cured or completed


def tb_outcomes(db: Session, institutions: list[int], start: date, end: date) -> list[TbOutcome]:
    regs = repository.registrations_managed(db, institutions, end, ("tb",), under_care=False)
    ids = [r[0] for r in regs]
    notified_on = repository.notifications(db, ids)
    first = repository.first_visits(db, ids)
    closings = {c.registration_id: c for c in repository.tb_closings_between(db, ids, start, end)}
    out = []
    for reg_id, patient_id, inst, team, condition, enrolled_on, doctor in regs:
        notice = notified_on.get(reg_id)
        deadline = rules.first_visit_soon(condition, enrolled_on, notified_on=notice, grade=None) if notice else None
        visited = first.get(reg_id)
        in_time = deadline is not None and visited is not None and visited <= deadline
        counted = notice is not None and start <= notice <= end and deadline is not None and (deadline <= end or in_time)
        c = closings.get(reg_id)
        if not counted and c is None:
            continue
        out.append(TbOutcome(reg_id, patient_id, inst, team, doctor, counted, counted and in_time, c is not None,
                             c is not None and c.regular, c is not None and c.outcome in TB_SUCCESS))
    return out


def tally(rows: Iterable[object], key: Callable[[object], Hashable], fields: tuple[str, ...],
          ) -> dict[Hashable, dict[str, int]]:
    """The rows' `fields` (flags or counts) summed per `key`, with `n` the number of rows."""
    out: dict[Hashable, dict[str, int]] = {}
    for r in rows:
        sums = out.setdefault(key(r), dict.fromkeys(("n", *fields), 0))
        sums["n"] += 1
        for name in fields:
            sums[name] += int(getattr(r, name))
    return out
