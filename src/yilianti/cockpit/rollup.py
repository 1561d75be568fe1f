"""Daily rollups of the cockpit's high-volume measures, so that a cockpit of three years reads a few thousand
rollup rows instead of every referral, read, consultation and recognition decision.

A rollup row is one alliance's count and sum of one measure's events on one local day, per pair of member
institutions and department — exactly what the member and department filters narrow on, so a figure computed from
rollups equals the figure computed from the rows (tests/cockpit/test_rollup.py, tests/demo/test_cockpit_data.py).
A rebuild replaces a range of days, one INSERT … SELECT … GROUP BY per family of measures
(repository.insert_rollups_by_sql: each the SQL twin of its measure's query and filter, which the tests compare).
Which measures: the sums split by department — referrals and closed loops, remote reads, consultations,
recognition and the encounters imported from the members' HIS — and the sums of encounters with the out-of-county
register (split by member only).
Medians (times) cannot be summed and stay on the rows; the lead's released slots and the help sent down are
small tables already aggregated per month or record.

Past days only: today's rows still come in, so the cockpit reads today (and any day not built) from the rows.
The periodic job (cockpit/tasks.py) builds the days not built yet and rebuilds the last two (rows committed
late); `yilianti cockpit rebuild` rebuilds a range after a change to memberships or a correction of old rows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy.orm import Session

from yilianti.alliance.repository import all_alliances
from yilianti.cockpit import repository
from yilianti.cockpit.measures import LEVELS, MEASURES, Event, Scope, scope_of
from yilianti.kit import clock

# the sums split by department, and the member-level sums of the families rolled up (the out-of-county register's)
ROLLED = tuple(m for m, (_fn, how) in MEASURES.items()
               if how == "sum" and (LEVELS[m] == "department" or m in repository.ROLLUP_KEYS))
HORIZON_DAYS = 3 * 366 + 31  # the periodic job keeps about three years built; older days read the rows
LATE_DAYS = 2  # yesterday and the day before are rebuilt on every run
CHUNK_DAYS = 31  # the periodic job's longest build
REBUILD_DAYS = 183  # a rebuild's step: half a year per statement, a line of progress each
MAX_RUNS = 48  # runs of days one refresh builds per alliance (a first run on three years takes a few passes)


def keys_of(measure: str) -> tuple[str, ...]:
    return repository.ROLLUP_KEYS.get(measure, (measure,))


def build(db: Session, alliance_ids: list[int], start: date, end: date) -> int:
    """Rebuild the rollups of [start, end] for the alliances from the rows — one INSERT … SELECT … GROUP BY per
    family of measures, all the alliances together; the number of rollup rows written."""
    repository.delete_rollups(db, alliance_ids, start, end)
    if not alliance_ids:
        return 0
    written = repository.insert_rollups_by_sql(db, alliance_ids, *scope_of(db, alliance_ids[0], start, end).utc_bounds)
    repository.mark_built(db, alliance_ids, start, end, clock.now())
    return written


def _chunks(start: date, end: date, days: int) -> list[tuple[date, date]]:
    out = []
    d = start
    while d <= end:
        last = min(end, d + timedelta(days=days - 1))
        out.append((d, last))
        d = last + timedelta(days=1)
    return out


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days, each at most CHUNK_DAYS long."""
    runs: list[tuple[date, date]] = []
    for d in days:
        if runs and d == runs[-1][1] + timedelta(days=1) and (d - runs[-1][0]).days < CHUNK_DAYS:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return runs


def refresh(db: Session, today: date | None = None) -> int:
    """The periodic job: build the days of the horizon not built yet (newest first, at most MAX_RUNS runs of
    days per alliance and call) and rebuild the last LATE_DAYS days."""
    today = today or clock.today_local()
    yesterday = today - timedelta(days=1)
    first = today - timedelta(days=HORIZON_DAYS)
    written = 0
    for alliance in all_alliances(db):
        if not alliance.active:
            continue
        built = repository.built_days(db, alliance.id, first, yesterday)
        late = {yesterday - timedelta(days=i) for i in range(LATE_DAYS)}
        wanted = sorted(d for d in (first + timedelta(days=i) for i in range((yesterday - first).days + 1))
                        if d not in built or d in late)
        for a, b in sorted(_runs(wanted), reverse=True)[:MAX_RUNS]:  # newest first: this year is ready soonest
            written += build(db, [alliance.id], a, b)
    return written


def rebuild(db: Session, start: date, end: date, alliance_ids: list[int] | None = None,
            progress: Callable[[str], None] | None = None, commit: Callable[[], None] | None = None,
            step_days: int = REBUILD_DAYS) -> int:
    """Rebuild [start, end] for the alliances (all active ones by default), `step_days` at a time (the
    alliances together), with a line of progress per chunk (stderr by default) and a commit after each (when
    given)."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    ids = [a.id for a in all_alliances(db) if a.active and (alliance_ids is None or a.id in alliance_ids)]
    chunks = _chunks(start, end, step_days)
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
    """The measure's events over a covered scope, for the member and department filters: from the rollups for its
    past days (one pseudo-event a day, summed by the database, without row ids; it carries the filters so that
    `measures.narrow` keeps it) and from the rows for today and after."""
    past_end = min(scope.end, clock.today_local() - timedelta(days=1))
    out: list[Event] = []
    if scope.start <= past_end:
        parties = (member,) if member is not None else ()
        out = [Event(0, day, float(total), "", parties, department)
               for day, total in repository.rollup_days(db, scope.alliance_id, keys_of(measure), scope.start, past_end,
                                                        member, department)]
    if past_end < scope.end:
        tail = scope.rows("tail", lambda: Scope(scope.alliance_id, max(scope.start, past_end + timedelta(days=1)),
                                                 scope.end, scope.memberships))
        out += MEASURES[measure][0](db, tail)
    return out
