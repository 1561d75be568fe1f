"""Monthly rollups of the cockpit's high-volume measures, so that a cockpit of three years reads a few thousand
rollup rows instead of every referral, read, consultation and recognition decision.

A rollup row is one alliance's count and sum of one measure's events in one local month, per pair of member
institutions and department — the grain the cockpit shows (monthly figures of the alliance, a member, a department),
so a figure computed from rollups equals the figure computed from the rows (tests/cockpit/test_rollup.py,
tests/demo/test_cockpit_data.py). A build rewrites whole months, one INSERT … SELECT … GROUP BY per family of
measures (repository.insert_rollups_by_sql: each the SQL twin of its measure's query and filter, which the tests
compare). Which measures: the sums split by department — referrals and closed loops, remote reads, consultations,
recognition and the encounters imported from the members' HIS — and the sums of encounters with the out-of-county
register (split by member only).
Medians (times) cannot be summed and stay on the rows; the lead's released slots and the help sent down are
small tables already aggregated per month or record.

Past days only: today's rows still come in, so the cockpit reads today (and any day not built, and the days of a
month the period only partly covers) from the rows. The month under way holds its days up to yesterday: the
periodic job (cockpit/tasks.py) builds the months not built yet and rebuilds the month of the last two days (rows
committed late); `yilianti cockpit rebuild` rebuilds a range of months after a change to memberships or a
correction of old rows. Which days a month holds is marked per day (`cockpit_rollup_day`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial

from sqlalchemy.orm import Session

from yilianti.alliance.repository import all_alliances
from yilianti.cockpit import repository
from yilianti.cockpit.measures import LEVELS, MEASURES, Event, Scope, scope_of
from yilianti.kit import clock

# the sums split by department, and the member-level sums of the families rolled up (the out-of-county register's)
ROLLED = tuple(m for m, (_fn, how) in MEASURES.items()
               if how == "sum" and (LEVELS[m] == "department" or m in repository.ROLLUP_KEYS))
HORIZON_DAYS = 3 * 366 + 31  # the periodic job keeps about three years built; older days read the rows
LATE_DAYS = 2  # yesterday and the day before are rebuilt on every run (their months)
MAX_MONTHS = 48  # months one refresh builds (a first run on three years builds them all)
REBUILD_MONTHS = 120  # a rebuild's step: ten years per statement (a scan of the rows each), a line of progress each


def keys_of(measure: str) -> tuple[str, ...]:
    return repository.ROLLUP_KEYS.get(measure, (measure,))


def _month(d: date) -> date:
    return d.replace(day=1)


def _month_end(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def build(db: Session, alliance_ids: list[int], start: date, end: date) -> int:
    """Rebuild the rollups of the months of [start, end] (whole months, up to yesterday) for the alliances from the
    rows — one INSERT … SELECT … GROUP BY per family of measures, all the alliances together; the number of rollup
    rows written."""
    yesterday = clock.today_local() - timedelta(days=1)
    first, last = _month(start), min(_month_end(end), yesterday)
    if not alliance_ids or first > last:
        return 0
    repository.delete_rollups(db, alliance_ids, first, last)
    written = repository.insert_rollups_by_sql(db, alliance_ids, *scope_of(db, alliance_ids[0], first, last).utc_bounds)
    repository.mark_built(db, alliance_ids, first, last, clock.now())
    return written


def _months(start: date, end: date, step: int) -> list[tuple[date, date]]:
    """[start, end] in runs of `step` months (the first and last may be partial)."""
    out = []
    d = start
    while d <= end:
        last = _month(d)
        for _ in range(step - 1):
            last = _month_end(last) + timedelta(days=1)
        last = min(end, _month_end(last))
        out.append((d, last))
        d = last + timedelta(days=1)
    return out


def refresh(db: Session, today: date | None = None) -> int:
    """The periodic job: build the months of the horizon with days not built yet (newest first, at most MAX_MONTHS
    per call) and rebuild the months of the last LATE_DAYS days — the alliances with the same months together."""
    today = today or clock.today_local()
    yesterday = today - timedelta(days=1)
    first = today - timedelta(days=HORIZON_DAYS)
    horizon = {first + timedelta(days=i) for i in range((yesterday - first).days + 1)}
    late = {yesterday - timedelta(days=i) for i in range(LATE_DAYS)}
    wanted: dict[tuple[date, ...], list[int]] = {}
    for alliance in all_alliances(db):
        if alliance.active:
            missing = (horizon - repository.built_days(db, alliance.id, first, yesterday)) | late
            newest = sorted({_month(d) for d in missing}, reverse=True)[:MAX_MONTHS]  # this year is ready soonest
            wanted.setdefault(tuple(newest), []).append(alliance.id)
    written = 0
    for months, ids in wanted.items():
        for m in months:
            written += build(db, ids, m, m)
    return written


def rebuild(db: Session, start: date, end: date, alliance_ids: list[int] | None = None,
            progress: Callable[[str], None] | None = None, commit: Callable[[], None] | None = None,
            step_months: int = REBUILD_MONTHS) -> int:
    """Rebuild the months of [start, end] for the alliances (all active ones by default), `step_months` at a time
    (the alliances together), with a line of progress per chunk (stderr by default) and a commit after each (when
    given)."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    ids = [a.id for a in all_alliances(db) if a.active and (alliance_ids is None or a.id in alliance_ids)]
    chunks = _months(_month(start), end, step_months)
    written = 0
    for i, (a, b) in enumerate(chunks, start=1):
        rows = build(db, ids, a, b)
        written += rows
        if commit:
            commit()
        say(f"cockpit rebuild: {len(ids)} alliance(s), {a} – {b} ({i}/{len(chunks)}): {rows} rows")
    return written


def covered(db: Session, scope: Scope) -> bool:
    """Whether every past day of the scope is built (the rollups can stand for its rows)."""
    past_end = min(scope.end, clock.today_local() - timedelta(days=1))
    return scope.start > past_end or repository.count_built_days(
        db, scope.alliance_id, scope.start, past_end) == (past_end - scope.start).days + 1


def events(db: Session, scope: Scope, measure: str, member: int | None = None,
           department: int | None = None) -> list[Event]:
    """The measure's events over a covered scope, for the member and department filters: from the rollups for the
    months the scope covers whole (one pseudo-event a month, summed by the database, without row ids; it carries the
    filters so that `measures.narrow` keeps it) — the month under way up to yesterday — and from the rows for the
    days of a month it covers in part, and for today and after."""
    past_end = min(scope.end, clock.today_local() - timedelta(days=1))
    first = scope.start if scope.start == _month(scope.start) else _month_end(scope.start) + timedelta(days=1)
    last = _month(past_end) if _month_end(past_end) <= scope.end else _month(past_end) - timedelta(days=1)
    if first > last:  # no month covered whole: the rows
        return MEASURES[measure][0](db, scope)
    parties = (member,) if member is not None else ()
    out = [Event(0, month, float(total), "", parties, department)
           for month, total in repository.rollup_months(db, scope.alliance_id, keys_of(measure), first, last, member,
                                                        department)]
    rolled_end = min(_month_end(last), past_end)
    for a, b in ((scope.start, first - timedelta(days=1)), (rolled_end + timedelta(days=1), scope.end)):
        if a <= b:
            part: Scope = scope.rows(f"part {a} {b}", partial(Scope, scope.alliance_id, a, b, scope.memberships))
            out += MEASURES[measure][0](db, part)
    return out
