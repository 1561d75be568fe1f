"""The drill-down: from a cockpit figure to the members it sums and to the rows it counts.

A figure is built from events that carry their rows (cockpit/measures.py), so the drill-down recomputes the one
indicator for the same alliance, period, member and department, and lists exactly the rows counted.

Who sees which rows (DOMAIN.md §4b, §9):
- Anyone who may see the cockpit sees the figures and the split by member (aggregates never name a patient).
- The rows of help sent down (帮扶 records, multi-site rosters) hold no patient data: listed for all of them.
- The rows about patients (referrals, remote reads, consultations, recognition decisions, chronic-care
  registrations, encounters imported from the members' HIS, the out-of-county register) are listed only for
  the alliance's own people — its administrators, the staff of its current members, system administrators —
  and then without the patient: row id, day, institutions, department, status. The health commission holds
  figures, never rows about patients.
- A patient's name is shown only where the one scoping rule (`authz.policy.readable`) lets the acting clinician
  see that patient, and each name shown is an audited read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from yilianti.alliance.repository import department_names, institution_names
from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.cockpit import repository
from yilianti.cockpit.measures import MEASURES, Event, scope_of, total
from yilianti.cockpit.service import Figure, compute
from yilianti.exceptions import NotFound
from yilianti.kit.listing import ListParams
from yilianti.kit.repository import Page
from yilianti.models.alliance import Alliance
from yilianti.scheduling.repository import is_current_member

PATIENT_TABLES = frozenset({"referral", "diagnostic_order", "consultation", "recognition_decision",
                            "chronic_registration", "encounter", "out_of_county_visit"})
LINKS = {"referral": "/referrals/{}", "diagnostic_order": "/diagnostics/orders/{}",
         "consultation": "/consultations/{}", "recognition_decision": "/recognition/decisions/{}"}


def may_list_patient_rows(db: Session, subject: Subject, alliance_id: int) -> bool:
    """The alliance's own people: its administrators, staff of a current member, system administrators."""
    return (subject.is_system_admin or alliance_id in subject.alliance_admin_of
            or is_current_member(db, alliance_id, subject.acting_institution_id))


@dataclass
class MemberFigure:
    institution_id: int
    name: str
    numerator: float | None
    denominator: float | None
    value: float | None


@dataclass
class Row:
    table: str
    id: int
    day: date
    value: float
    institutions: list[str]
    department: str
    what: str | None  # a code or a short text; the template labels the codes
    status: str | None
    patient: str | None  # the name, only where the acting clinician may see the patient
    link: str | None
    patient_id: int | None = None  # never shown: the key for the name


@dataclass
class Drill:
    figure: Figure
    measure: str | None  # the measure whose rows are listed (numerator or denominator)
    measures: list[str]
    members: list[MemberFigure]
    rows_hidden: bool  # rows about patients, not for this viewer
    page: Page[Row] | None


def measures_of(figure: Figure) -> list[str]:
    ind = figure.indicator
    return [m for m in (ind.numerator, ind.denominator) if m] if ind.source == "computed" else []


def by_member(db: Session, figure: Figure, alliance_id: int, start: date, end: date) -> list[MemberFigure]:
    """The figure split over the alliance's members: each member's share of the events it takes part in."""
    ms = measures_of(figure)
    if not ms or not all(e.parties for m in ms for e in figure.events.get(m, ())):
        return []  # a figure of the whole alliance (the lead's released slots) has no split
    members = scope_of(db, alliance_id, start, end).institutions
    names = institution_names(db, members)
    out = []
    for inst in members:
        parts = [total([e for e in figure.events[m] if inst in e.parties], MEASURES[m][1]) for m in ms]
        n, d = parts[0], parts[1] if len(parts) > 1 else None
        value = n if len(parts) == 1 else ((n or 0.0) / d if d else None)
        if (n or 0) or (d or 0):
            out.append(MemberFigure(inst, names.get(inst, ""), n, d, value))
    return sorted(out, key=lambda m: (-(m.denominator or m.numerator or 0), m.name))


def _matches(row: Row, q: str) -> bool:
    q = q.strip()
    return not q or (q.isdigit() and int(q) == row.id) or any(q in text for text in
                                                                 (*row.institutions, row.department, row.what or ""))


def rows(db: Session, subject: Subject, events: list[Event], lp: ListParams, *, everything: bool = False,
         how: str = "sum") -> Page[Row]:
    """The rows of the events narrowed by the list's dates and search, newest first, one page (or all of them); a
    row counted on several days shows their sum (a measure of sums) or its newest event's value."""
    chosen = [e for e in events if e.table and (lp.start is None or e.day >= lp.start)
              and (lp.end is None or e.day <= lp.end)]
    chosen.sort(key=lambda e: (e.day, e.row_id), reverse=True)
    merged: dict[tuple[str, int], Event] = {}
    for e in chosen:  # a posting spread over its days is one row with their sum
        key = (e.table, e.row_id)
        if key not in merged:
            merged[key] = e
        elif how == "sum":
            merged[key] = replace(merged[key], value=merged[key].value + e.value)
    built = [r for r in _build(db, list(merged.values())) if _matches(r, lp.q)]
    start = (lp.page - 1) * lp.per_page
    shown = built if everything else built[start:start + lp.per_page]
    return Page(_with_names(db, subject, shown), len(built), lp.page, lp.per_page)


def _build(db: Session, events: list[Event]) -> list[Row]:
    details: dict[str, dict[int, tuple[Any, ...]]] = {}
    for table in {e.table for e in events}:
        details[table] = repository.row_details(db, table, [e.row_id for e in events if e.table == table])
    insts = institution_names(db, [i for e in events for i in e.parties])
    deps = department_names(db, [d[3] for t in details.values() for d in t.values()])
    out = []
    for e in events:
        _id, what, status, dep, patient_id = details[e.table].get(e.row_id, (e.row_id, None, None, None, None))
        out.append(Row(e.table, e.row_id, e.day, e.value, [insts.get(i, "") for i in e.parties],
                       deps.get(dep, "") if dep else "", what, status, None,
                       LINKS[e.table].format(e.row_id) if e.table in LINKS else None, patient_id))
    return out


def _with_names(db: Session, subject: Subject, shown: list[Row]) -> list[Row]:
    """Patients' names for the rows shown, where policy lets the acting clinician see them; each read audited."""
    ids = sorted({r.patient_id for r in shown if r.table in PATIENT_TABLES and r.patient_id is not None})
    names = repository.readable_patient_names(db, policy.readable(subject), ids) if ids else {}
    for r in shown:
        if r.patient_id in names:
            r.patient = names[r.patient_id]
    for pid in sorted(names):
        audit.record(db, subject, "read", "cockpit_rows", pid, patient_id=pid,
                     detail={"rows": [f"{r.table}:{r.id}" for r in shown if r.patient_id == pid]})
    return shown


def drill(db: Session, subject: Subject, alliance: Alliance, code: str, start: date, end: date, *,
          member: int | None, department: int | None, measure: str | None, lp: ListParams,
          everything: bool = False) -> Drill:
    figures = compute(db, alliance.id, start, end, codes=[code], member=member, department=department)
    if not figures:
        raise NotFound("没有这个指标")
    fig = figures[0]
    ms = measures_of(fig)
    chosen = measure if measure in ms else (ms[0] if ms else None)
    members = by_member(db, fig, alliance.id, start, end) if member is None and fig.note is None else []
    hidden = False
    page: Page[Row] | None = None
    if chosen is not None and fig.note is None:
        events = fig.events.get(chosen, [])
        hidden = any(e.table in PATIENT_TABLES for e in events) and not may_list_patient_rows(db, subject, alliance.id)
        if not hidden:
            page = rows(db, subject, events, lp, everything=everything, how=MEASURES[chosen][1])
    return Drill(fig, chosen, ms, members, hidden, page)
