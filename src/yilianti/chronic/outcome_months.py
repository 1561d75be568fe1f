"""The monthly outcome figures of the charts (chronic/outcomes.py: `programme` and `monthly_by`, the Simple
programme's rules) per group — the whole institution, a team, a responsible doctor, a village, a member
institution — stored per institution by a periodic job, and read from there when every month asked is stored;
otherwise (a new installation, an older period) computed from the rows as before. Both paths count with the same
functions and the same group keys (`key_of`), so a stored figure is the computed one as of its build.

Why stored: computed on the fly, the 12 months of a 50,000-patient registry took seconds at p95
(docs/benchmarks.md, "chronic outcomes"), over the 300 ms the page may take."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import fields
from datetime import date, datetime

from sqlalchemy.orm import Session

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
    n = months or (REFRESH_MONTHS if repository.has_outcome_months(db, institution_id) else FIRST_MONTHS)
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
