"""The monthly outcome figures of the charts (chronic/outcomes.py: `programme` and `monthly_by`, the Simple
programme's rules) per group — the whole institution, a team, a responsible doctor, a village, a member
institution — stored per institution by a periodic job, and read from there when every month asked is stored;
otherwise (a new installation, an older period) computed from the rows as before. Both paths count with the same
functions and the same group keys (`key_of`), so a stored figure is the computed one as of its build.

Why stored: computed on the fly, the 12 months of a 50,000-patient registry took seconds at p95
(docs/benchmarks.md, "chronic outcomes"), over the 300 ms the page may take."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields
from datetime import date, datetime

from sqlalchemy.orm import Session

from yilianti.alliance.repository import alliances_with_role_of, current_memberships, institution_names
from yilianti.chronic import outcomes, repository
from yilianti.chronic import teams as team_rules
from yilianti.kit import clock

STORED = ("all", "team", "doctor", "village")  # the groupings stored; a member institution is its "all"
REFRESH_MONTHS = 13  # rebuilt on every run: the last year and the month before (late visits move them)
FIRST_MONTHS = 36  # a first build: three years, the longest period the page shows
COUNTS = tuple(f.name for f in fields(outcomes.Month) if f.name != "month")
Reg = outcomes.Reg


def key_of(db: Session, grouping: str, institution_id: int, regs: list[Reg]) -> Callable[[Reg], Hashable]:
    """The group a registration counts in, as text: its team's or responsible doctor's id, the first of the
    institution's teams' villages its patient's address names (`teams.village_of`), its institution's id; "none"
    when it has none; "" for the whole."""
    if grouping == "team":
        return lambda r: str(r[3] or "none")
    if grouping == "doctor":
        return lambda r: str(r[5] or "none")
    if grouping == "village":
        names = list(dict.fromkeys(v for tm in repository.teams_of(db, institution_id)
                                   for v in team_rules.villages(tm.village)))
        address = repository.addresses(db, {r[1] for r in regs})
        return lambda r: team_rules.village_of(address.get(r[1], ""), names) or "none"
    if grouping == "institution":
        return lambda r: str(r[2])
    return lambda r: ""


def rebuild(db: Session, institution_id: int, months: int | None = None, today: date | None = None) -> int:
    """Store the institution's figures of the last `months` (to today; a first build `FIRST_MONTHS`, then
    `REFRESH_MONTHS`) for each registry and stored grouping; the rows written. The whole institution's series is
    stored for every month, empty or not: a month is stored when it has that row."""
    day = today or clock.today_local()
    n = months or _months_to_rebuild(db, institution_id, day)
    start, now = outcomes.month_first(day, n - 1), clock.now()
    written = 0
    for condition in repository.MEASURED:
        data = outcomes.programme(db, [institution_id], condition, start, day)
        labels = [label for label, _ in data.ends]
        as_of = {label: end for label, end in data.ends}
        rows = []
        for grouping in STORED:
            per_group = outcomes.monthly_by(data, condition, key_of(db, grouping, institution_id, data.regs))
            if grouping == "all" and not per_group:
                per_group = {"": [outcomes.Month(label) for label in labels]}
            rows += [{"institution_id": institution_id, "condition": condition, "grouping": grouping,
                      "group_key": str(key), "month": m.month, "as_of": as_of[m.month], "computed_at": now,
                      **{name: getattr(m, name) for name in COUNTS}}
                     for key, series in per_group.items() for m in series]
        repository.replace_outcome_months(db, institution_id, condition, labels, rows)
        written += len(rows)
    return written


def _months_to_rebuild(db: Session, institution_id: int, day: date) -> int:
    """A first build: `FIRST_MONTHS`; then `REFRESH_MONTHS`, or back to the month of the earliest status change
    recorded since the last build when one was dated further back (a registration counts by its status as of each
    month's end, so a transfer dated two years back changes those months' figures)."""
    built = repository.outcome_months_built(db, institution_id)
    if built is None:
        return FIRST_MONTHS
    earliest = repository.earliest_status_change_since(db, institution_id, built)
    back = 0 if earliest is None else (day.year - earliest.year) * 12 + day.month - earliest.month + 1
    return max(REFRESH_MONTHS, back)


def refresh(db: Session) -> int:
    """Every institution with a hypertension or diabetes registry rebuilt (the periodic job)."""
    return sum(rebuild(db, inst) for inst in repository.institutions_with_registries(db))


def monthly(db: Session, institutions: list[int], condition: str, grouping: str, start: date, end: date,
            ) -> tuple[dict[Hashable, list[outcomes.Month]], datetime | None]:
    """Each group's figures month by month over [start, end], and when they were built (None: computed now).
    Stored when every institution has every month stored; computed from the rows otherwise."""
    labels = [label for label, _ in outcomes._month_ends(outcomes.month_first(start), end)]
    marks = repository.outcome_months(db, institutions, condition, "all", labels)
    have = {(r.institution_id, r.month) for r in marks}
    if all((i, label) in have for i in institutions for label in labels):
        stored_as = "all" if grouping == "institution" else grouping
        rows = marks if stored_as == "all" else repository.outcome_months(db, institutions, condition, stored_as,
                                                                           labels)
        index = {label: k for k, label in enumerate(labels)}
        out: dict[Hashable, list[outcomes.Month]] = {}
        for r in rows:
            key = str(r.institution_id) if grouping == "institution" else r.group_key
            m = out.setdefault(key, [outcomes.Month(label) for label in labels])[index[r.month]]
            for name in COUNTS:
                setattr(m, name, getattr(m, name) + getattr(r, name))
        return out, min(r.computed_at for r in marks)
    data = outcomes.programme(db, institutions, condition, start, end)
    return outcomes.monthly_by(data, condition, key_of(db, grouping, institutions[0], data.regs)), None


# ------------------------------------------------------------------ what the page and the JSON API show

MAX_MONTHS = 36  # the longest period the charts show


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


def institutions_led(db: Session, inst: int) -> dict[int, str]:
    """The acting institution, and the members in force of the alliances it leads."""
    ids = {inst}
    for alliance, role in alliances_with_role_of(db, inst):
        if role == "lead":
            ids |= {m.institution_id for m in current_memberships(db, alliance.id, clock.today_local())}
    names = institution_names(db, ids)
    return dict(sorted(names.items(), key=lambda kv: (kv[0] != inst, kv[1])))


def groups_of(db: Session, by: str, inst: int, members: dict[int, str]) -> list[tuple[str, str]]:
    """The groups (key, name) in order, the unassigned last (keys as `key_of` gives them)."""
    if by == "team":
        return [(str(tm.id), tm.name) for tm in repository.teams_of(db, inst)] + [("none", "未分配团队")]
    if by == "doctor":
        return [(str(u), n) for u, n in repository.doctors_of(db, inst)] + [("none", "未指定")]
    if by == "village":
        names = dict.fromkeys(v for tm in repository.teams_of(db, inst) for v in team_rules.villages(tm.village))
        return [(v, v) for v in names] + [("none", "地址未注明服务村")]
    return [(str(i), n) for i, n in members.items()]


def total(months: list[list[outcomes.Month]], labels: list[str]) -> list[outcomes.Month]:
    out = [outcomes.Month(label) for label in labels]
    for series in months:
        for total, m in zip(out, series, strict=True):
            for name in ("registered", "under_care", "lost", "cohort", *outcomes.OUTCOME_KINDS, "due", "done"):
                setattr(total, name, getattr(total, name) + getattr(m, name))
    return out


@dataclass
class Figures:
    """One registry's monthly figures as the page and the API show them: each group's series, the groups (key,
    name) in order, the group asked for ("" for the whole, also when the key names no group) with its name and
    series, the month labels, and when the stored figures were built (None: computed now)."""
    per_group: dict[Hashable, list[outcomes.Month]]
    groups: list[tuple[str, str]]
    group: str
    name: str
    series: list[outcomes.Month]
    labels: list[str]
    built: datetime | None


def figures(db: Session, inst: int, condition: str, by: str, group: str, start: date, end: date) -> Figures:
    """The figures of `period` [start, end] grouped `by` team, village, doctor or member institution (a lead
    institution's alliance members; the others: the institution's own registry)."""
    members = institutions_led(db, inst)
    scope = list(members) if by == "institution" else [inst]
    per_group, built = monthly(db, scope, condition, by, start, end)
    labels = [m.month for m in outcomes.months_of(start, end)]
    groups = [(k, n) for k, n in groups_of(db, by, inst, members) if k in per_group or k != "none"]
    group = group if group in dict(groups) else ""
    series = per_group.get(group) or total([], labels) if group else total(list(per_group.values()), labels)
    name = dict(groups).get(group, "") if group else ("全部" if by == "institution" else "本机构合计")
    return Figures(per_group, groups, group, name, series, labels, built)
