"""The measures the indicator library names: each one the rows it counts, dated, with a value.

A measure gives `Event`s — (row id, the local day that dates the row, value) — for an alliance and a
period; the cockpit sums them (counts, money) or takes their median (times) per month and for the whole
period, and divides numerator by denominator for a ratio. Because every figure is built from events
that carry their row ids, any number on the cockpit can be traced to the rows it counts (the drill-down,
and the test that recounts each indicator straight from the tables).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from statistics import median
from typing import Any

from sqlalchemy.orm import Session

from yilianti.alliance.repository import memberships_of_alliance
from yilianti.chronic.outcomes import follow_up_completion, patient_outcomes
from yilianti.cockpit import repository
from yilianti.kit import clock
from yilianti.models.alliance import MemberRole, Membership
from yilianti.models.cockpit import AssistanceKind
from yilianti.models.encounter import EncounterKind
from yilianti.models.referral import Direction
from yilianti.models.workforce import INTERMEDIATE_OR_ABOVE
from yilianti.referral.states import Status as RS
from yilianti.scheduling.sinking import sinking_by_month


@dataclass(frozen=True)
class Event:
    """One counted row: its id in `table`, the local day that dates it, its value, the member institutions it
    involves (a referral's two sides; none for a figure of the whole alliance) and its department, if any."""

    row_id: int
    day: date
    value: float = 1.0
    table: str = ""
    parties: tuple[int, ...] = ()
    department: int | None = None
    who: Any = None  # the person an event is about, for a measure of distinct people


@dataclass
class Scope:
    """An alliance over a period of local days [start, end], with its memberships."""

    alliance_id: int
    start: date
    end: date
    memberships: dict[int, list[Membership]]
    memo: dict[str, Any] = field(default_factory=dict)  # rows read once for the measures that share them

    def rows(self, key: str, read: Callable[[], Any]) -> Any:
        """The rows of `read`, read once per scope (up, down and their splits all read the same referrals)."""
        if key not in self.memo:
            self.memo[key] = read()
        return self.memo[key]

    @property
    def institutions(self) -> list[int]:
        return sorted(self.memberships)

    @property
    def utc_bounds(self) -> tuple[datetime, datetime]:
        """The period as UTC instants: local midnight of `start` to local midnight after `end`."""
        return (clock.as_utc(datetime.combine(self.start, time(0), clock.SHANGHAI)),
                clock.as_utc(datetime.combine(self.end + timedelta(days=1), time(0), clock.SHANGHAI)))

    def member_on(self, institution_id: int | None, day: date) -> bool:
        return any(m.is_current(day) for m in self.memberships.get(institution_id or 0, ()))

    def lead_on(self, institution_id: int | None, day: date) -> bool:
        """The institution is a lead (牵头医院) of the alliance on the day."""
        return any(m.role == MemberRole.lead and m.is_current(day) for m in self.memberships.get(institution_id or 0, ()))

    def grassroots(self, institution_id: int | None) -> bool:
        """The member institution is grassroots (基层: `Institution.is_grassroots`, by its kind)."""
        return any(m.institution.is_grassroots for m in self.memberships.get(institution_id or 0, ()))


def scope_of(db: Session, alliance_id: int, start: date, end: date) -> Scope:
    memberships: dict[int, list[Membership]] = {}
    for m in memberships_of_alliance(db, alliance_id):
        memberships.setdefault(m.institution_id, []).append(m)
    return Scope(alliance_id, start, end, memberships)


def _day(at: datetime) -> date:
    return clock.to_local(at).date()


# ------------------------------------------------------------------------------------------ referral


def _referrals(db: Session, scope: Scope, direction: str, admitted: bool | None = None) -> list[Event]:
    out = []
    for rid, d, at, f, t, after_admission, dep in scope.rows(
            "referrals", lambda: repository.referrals_between(db, *scope.utc_bounds, scope.institutions)):
        day = _day(at)
        if d == direction and scope.member_on(f, day) and scope.member_on(t, day) \
                and (admitted is None or after_admission == admitted):
            out.append(Event(rid, day, 1.0, "referral", (f, t), dep))
    return out


def referrals_up(db: Session, scope: Scope) -> list[Event]:
    return _referrals(db, scope, Direction.up)


def referrals_down(db: Session, scope: Scope) -> list[Event]:
    return _referrals(db, scope, Direction.down)


def referrals_down_inpatient(db: Session, scope: Scope) -> list[Event]:
    return _referrals(db, scope, Direction.down, admitted=True)


def referrals_down_outpatient(db: Session, scope: Scope) -> list[Event]:
    return _referrals(db, scope, Direction.down, admitted=False)


def referral_loops_closed(db: Session, scope: Scope) -> list[Event]:
    return [Event(rid, _day(at), 1.0, "referral", (f, t), dep)
            for rid, at, f, t, dep in repository.loops_closed_between(db, *scope.utc_bounds, scope.institutions)
            if scope.member_on(f, _day(at)) and scope.member_on(t, _day(at))]


def _step_hours(db: Session, scope: Scope, start_moves: set[tuple[str | None, str]],
                end_moves: set[tuple[str | None, str]]) -> list[Event]:
    """Hours from the first of `start_moves` to the first of `end_moves`, per referral submitted in the
    period (dated by its submission)."""
    rows = repository.referral_moves(db, *scope.utc_bounds, scope.institutions, sorted(start_moves | end_moves, key=str))
    first: dict[int, dict[str, datetime]] = {}
    placed: dict[int, tuple[date, tuple[int, ...], int | None]] = {}
    for rid, submitted, f, t, a, b, at, dep in rows:
        day = _day(submitted)
        if not (scope.member_on(f, day) and scope.member_on(t, day)):
            continue
        placed[rid] = (day, (f, t), dep)
        side = "start" if (a, b) in start_moves else "end"
        if side not in first.setdefault(rid, {}) or at < first[rid][side]:
            first[rid][side] = at
    return [Event(rid, placed[rid][0], (ends["end"] - ends["start"]).total_seconds() / 3600, "referral",
                  placed[rid][1], placed[rid][2])
            for rid, ends in sorted(first.items()) if "start" in ends and "end" in ends and ends["end"] >= ends["start"]]


_SUBMIT: set[tuple[str | None, str]] = {(RS.draft.value, RS.submitted.value), (None, RS.submitted.value)}
_RECEIVE: set[tuple[str | None, str]] = {(RS.submitted.value, RS.received.value)}
_DECIDE: set[tuple[str | None, str]] = {(RS.received.value, RS.accepted.value), (RS.received.value, RS.rejected.value),
           (RS.received.value, RS.returned.value)}


def referral_receive_hours(db: Session, scope: Scope) -> list[Event]:
    return _step_hours(db, scope, _SUBMIT, _RECEIVE)


def referral_decide_hours(db: Session, scope: Scope) -> list[Event]:
    return _step_hours(db, scope, _RECEIVE, _DECIDE)


# ------------------------------------------------------------------------------------------ sinking


def _sinking(db: Session, scope: Scope, field: str) -> list[Event]:
    """Slots of the lead's reserve schedules, one event per month (the figures are per clinic month)."""
    return [Event(0, date.fromisoformat(m.month + "-01"), float(getattr(m, field)))
            for m in sinking_by_month(db, scope.alliance_id, scope.start, scope.end)]


def slots_offered(db: Session, scope: Scope) -> list[Event]:
    return _sinking(db, scope, "offered")


def slots_reserved(db: Session, scope: Scope) -> list[Event]:
    return _sinking(db, scope, "reserved")


def slots_reserved_booked(db: Session, scope: Scope) -> list[Event]:
    return _sinking(db, scope, "reserved_booked")


# ------------------------------------------------------------------------------------------ shared centres


def _reads(db: Session, scope: Scope) -> Iterable[tuple[Event, int | None, str]]:
    """(the order as an event, its TAT, its kind): the ordering member and the centre are its parties."""
    for oid, at, ordering, centre, tat, kind, dep in scope.rows(
            "reads", lambda: repository.remote_reads_between(db, *scope.utc_bounds, scope.institutions)):
        if scope.member_on(ordering, _day(at)):
            yield Event(oid, _day(at), 1.0, "diagnostic_order", (ordering, centre), dep), tat, kind


def remote_reads(db: Session, scope: Scope) -> list[Event]:
    return [e for e, _, _ in _reads(db, scope)]


def remote_reads_imaging_ecg(db: Session, scope: Scope) -> list[Event]:
    """National indicator (5): the imaging and ECG centres' volume (lab excluded)."""
    return [e for e, _, kind in _reads(db, scope) if kind in repository.CENTRE_KINDS]


def remote_read_tat_minutes(db: Session, scope: Scope) -> list[Event]:
    return [replace(e, value=float(tat)) for e, tat, _ in _reads(db, scope) if tat is not None]


def consultations(db: Session, scope: Scope) -> list[Event]:
    return [Event(cid, _day(at), 1.0, "consultation", (req, to) if to else (req,), dep)
            for cid, at, req, to, dep in repository.consultations_between(db, *scope.utc_bounds, scope.institutions)
            if scope.member_on(req, _day(at))]


# ------------------------------------------------------------------------------------------ recognition


def _decisions(db: Session, scope: Scope) -> Iterable[tuple[Event, str, int]]:
    for did, at, inst, decision, saved, dep in scope.rows(
            "decisions", lambda: repository.recognition_decisions_between(db, *scope.utc_bounds, scope.institutions)):
        if scope.member_on(inst, _day(at)):
            yield Event(did, _day(at), 1.0, "recognition_decision", (inst,), dep), decision, saved or 0


def recognition_decisions(db: Session, scope: Scope) -> list[Event]:
    return [e for e, _, _ in _decisions(db, scope)]


def recognition_reused(db: Session, scope: Scope) -> list[Event]:
    return [e for e, decision, _ in _decisions(db, scope) if decision == repository.REUSE]


def recognition_saved_yuan(db: Session, scope: Scope) -> list[Event]:
    return [replace(e, value=saved / 100) for e, decision, saved in _decisions(db, scope) if decision == repository.REUSE]


# ------------------------------------------------------------------------------------------ assistance (帮扶)


def _days(a: date, b: date) -> Iterable[date]:
    d = a
    while d <= b:
        yield d
        d += timedelta(days=1)


def assistance_person_days(db: Session, scope: Scope) -> list[Event]:
    """Expert person-days sent to members: postings spread evenly over their days (so a year-long posting
    counts in every month it runs), and the multi-site practice rosters' sessions (a whole day 1, a half 0.5)
    of practitioners working at a member other than their home one."""
    out: list[Event] = []
    for r in repository.assistance_between(db, scope.alliance_id, scope.start, scope.end, AssistanceKind.posting):
        last = r.end_date or max(r.start_date, scope.end)
        span = (last - r.start_date).days + 1
        per_day = (r.person_days or span) / span
        for day in _days(max(r.start_date, scope.start), min(last, scope.end)):
            if scope.member_on(r.from_institution_id, day) and scope.member_on(r.to_institution_id, day):
                out.append(Event(r.id, day, per_day, "assistance_record", (r.from_institution_id, r.to_institution_id)))
    for sid, _prac, home, weekday, period, starts, ends, site in repository.rostered_sites(
            db, scope.institutions, scope.start, scope.end):
        for day in _days(max(starts or scope.start, scope.start), min(ends or scope.end, scope.end)):
            if day.isoweekday() == weekday and scope.member_on(home, day) and scope.member_on(site, day):
                out.append(Event(sid, day, 1.0 if period == "all" else 0.5, "practice_site", (home, site)))
    return out


def _assistance(db: Session, scope: Scope, kind: str | tuple[str, ...], field: str | None) -> list[Event]:
    """Help of a kind dated by its start day: the field's amount, or one per record (field None)."""
    kinds = (kind,) if isinstance(kind, str) else kind
    return [Event(r.id, r.start_date, 1.0 if field is None else float(getattr(r, field) or 0), "assistance_record",
                  (r.from_institution_id, r.to_institution_id))
            for r in scope.rows("assistance", lambda: repository.assistance_between(db, scope.alliance_id, scope.start,
                                                                                    scope.end))
            if r.kind in kinds and scope.start <= r.start_date <= scope.end
            and scope.member_on(r.from_institution_id, r.start_date) and scope.member_on(r.to_institution_id, r.start_date)]


def assistance_clinics(db: Session, scope: Scope) -> list[Event]:
    return _assistance(db, scope, AssistanceKind.clinic, "sessions")


def assistance_patients(db: Session, scope: Scope) -> list[Event]:
    return _assistance(db, scope, AssistanceKind.clinic, "patients")


def assistance_surgeries(db: Session, scope: Scope) -> list[Event]:
    return _assistance(db, scope, AssistanceKind.surgery, "surgeries")


def assistance_surgeries_grade34(db: Session, scope: Scope) -> list[Event]:
    return _assistance(db, scope, AssistanceKind.surgery, "surgeries_grade34")


def assistance_teaching(db: Session, scope: Scope) -> list[Event]:
    return _assistance(db, scope, (AssistanceKind.lecture, AssistanceKind.rounds), "sessions")


def assistance_trainees(db: Session, scope: Scope) -> list[Event]:
    return _assistance(db, scope, AssistanceKind.trainee, "patients")


def assistance_departments(db: Session, scope: Scope) -> list[Event]:
    return _assistance(db, scope, AssistanceKind.department, None)


def assistance_techniques(db: Session, scope: Scope) -> list[Event]:
    return _assistance(db, scope, AssistanceKind.technique, None)


def assistance_money(db: Session, scope: Scope) -> list[Event]:
    return _assistance(db, scope, (AssistanceKind.equipment, AssistanceKind.funds), "amount_yuan")


def assistance_seconded_doctors(db: Session, scope: Scope) -> list[Event]:
    """National indicator (4)'s numerator: doctors of intermediate title or above (主治医师 and up) the lead posts to
    the grassroots (牵头医院派驻基层: from an institution that is the alliance's lead on the day to a grassroots
    member) — an event per posting and month it runs in while both hold, dated by its first such day; the figure
    counts the distinct people (`who`: the practitioner when the record names one, else the sending institution and
    the person's name), in the month and over the period."""
    out: list[Event] = []
    for r in repository.assistance_between(db, scope.alliance_id, scope.start, scope.end, AssistanceKind.posting):
        if (r.title or "").strip() not in INTERMEDIATE_OR_ABOVE or not scope.grassroots(r.to_institution_id):
            continue
        who = ("practitioner", r.practitioner_id) if r.practitioner_id else \
            ("person", r.from_institution_id, (r.person or "").strip())
        months: set[tuple[int, int]] = set()
        for day in _days(max(r.start_date, scope.start), min(r.end_date or max(r.start_date, scope.end), scope.end)):
            if (day.year, day.month) not in months and scope.lead_on(r.from_institution_id, day) \
                    and scope.member_on(r.to_institution_id, day):
                months.add((day.year, day.month))
                out.append(Event(r.id, day, 1.0, "assistance_record", (r.from_institution_id, r.to_institution_id),
                                 who=who))
    return out


# ------------------------------------------------------------------------------------------ imported figures


RESIDENTS = "county.residents"  # the imported indicator holding the county's resident population (常住人口)


def residents_10k(db: Session, scope: Scope) -> list[Event]:
    """National indicator (4)'s denominator: the county's resident population in ten thousands — for each month of
    the period, the latest imported 常住人口 figure (`county.residents`) whose period began by the month's end (a
    correction entered later replaces the figure of its period); an event a month, dated by its first day in the
    period. The figure takes the latest month's."""
    figures = repository.figures_in_force(db, scope.alliance_id, RESIDENTS, scope.end)  # oldest period first
    out: list[Event] = []
    day = scope.start
    while day <= scope.end:
        month_end = min(date(day.year + day.month // 12, day.month % 12 + 1, 1) - timedelta(days=1), scope.end)
        known = [f for f in figures if f.period_start <= month_end]
        if known:
            out.append(Event(known[-1].id, day, known[-1].value / 10000, "indicator_figure"))
        day = month_end + timedelta(days=1)
    return out


# ------------------------------------------------------------------------------------------ chronic care


def _chronic(db: Session, scope: Scope, condition: str | None, flag: str | None, *, people: bool = False) -> list[Event]:
    """Managed chronic-care registrations of the members (chronic/outcomes.py), one event each dated by its
    last follow-up in the period (the period's end without one); `flag` keeps those standard, controlled
    or admitted; `people` counts a patient in several registries once."""
    out: list[Event] = []
    seen: set[int] = set()
    for r in patient_outcomes(db, scope.institutions, scope.start, scope.end):
        day = r.last_visit or scope.end
        if (condition is not None and r.condition != condition) or (flag is not None and not getattr(r, flag)) \
                or not scope.member_on(r.institution_id, day) or (people and r.patient_id in seen):
            continue
        seen.add(r.patient_id)
        out.append(Event(r.registration_id, day, 1.0, "chronic_registration", (r.institution_id,)))
    return out


def _chronic_follow_ups(db: Session, scope: Scope, done: bool | None) -> list[Event]:
    """The members' chronic follow-ups due in the period (not cancelled), dated by the due day; `done`: only those
    done by the end of the month they fell due in (chronic/outcomes.done_in_month)."""
    rows = scope.rows("chronic_follow_ups", lambda: follow_up_completion(db, scope.institutions, scope.start, scope.end))
    return [Event(fid, due_on, 1.0, "chronic_follow_up", (inst,)) for fid, inst, due_on, ok in rows
            if (done is None or ok == done) and scope.member_on(inst, due_on)]


def chronic_follow_ups_due(db: Session, scope: Scope) -> list[Event]:
    return _chronic_follow_ups(db, scope, None)


def chronic_follow_ups_done(db: Session, scope: Scope) -> list[Event]:
    return _chronic_follow_ups(db, scope, True)


def chronic_managed_htn(db: Session, scope: Scope) -> list[Event]:
    return _chronic(db, scope, "hypertension", None)


def chronic_standard_htn(db: Session, scope: Scope) -> list[Event]:
    return _chronic(db, scope, "hypertension", "standard")


def chronic_bp_controlled(db: Session, scope: Scope) -> list[Event]:
    return _chronic(db, scope, "hypertension", "controlled")


def chronic_managed_dm(db: Session, scope: Scope) -> list[Event]:
    return _chronic(db, scope, "diabetes_t2", None)


def chronic_standard_dm(db: Session, scope: Scope) -> list[Event]:
    return _chronic(db, scope, "diabetes_t2", "standard")


def chronic_glucose_controlled(db: Session, scope: Scope) -> list[Event]:
    return _chronic(db, scope, "diabetes_t2", "controlled")


def chronic_managed_people(db: Session, scope: Scope) -> list[Event]:
    return _chronic(db, scope, None, None, people=True)


def chronic_people_admitted(db: Session, scope: Scope) -> list[Event]:
    return _chronic(db, scope, None, "admitted", people=True)


# ------------------------------------------------------------------------------------------ encounters (members' HIS)


@dataclass(frozen=True)
class _Enc:
    event: Event
    kind: str
    tcm: bool
    cost: float
    paid: float
    grassroots: bool


def _encounters(db: Session, scope: Scope) -> list[_Enc]:
    """Encounters imported from the members' HIS, dated by `Encounter.day` (a visit's day, a stay's discharge), at an
    institution that was a member on that day."""
    def read() -> list[_Enc]:
        return [_Enc(Event(eid, day, 1.0, "encounter", (inst,), dep), kind, tcm, cost or 0.0, paid or 0.0, grassroots)
                for eid, day, inst, dep, kind, tcm, cost, paid, grassroots
                in repository.encounters_between(db, scope.start, scope.end, scope.institutions)
                if scope.member_on(inst, day)]
    return scope.rows("encounters", read)  # type: ignore[no-any-return]


def _out_of_county(db: Session, scope: Scope) -> list[tuple[Event, str, float]]:
    """The alliance's out-of-county register (insurance settlements of its residents outside the county): (the visit
    as an event, its home member as its party when known; kind; insurance paid)."""
    return scope.rows("out_of_county", lambda: [  # type: ignore[no-any-return]
        (Event(vid, day, 1.0, "out_of_county_visit", (home,) if home else ()), kind, paid or 0.0)
        for vid, day, home, kind, _cost, paid in repository.out_of_county_between(db, [scope.alliance_id], scope.start,
                                                                                  scope.end)])


def encounter_visits(db: Session, scope: Scope) -> list[Event]:
    """Outpatient and emergency visits (门急诊人次) at the members."""
    return [e.event for e in _encounters(db, scope) if e.kind in EncounterKind.VISITS]


def encounter_visits_grassroots(db: Session, scope: Scope) -> list[Event]:
    return [e.event for e in _encounters(db, scope) if e.kind in EncounterKind.VISITS and e.grassroots]


def encounter_visits_tcm(db: Session, scope: Scope) -> list[Event]:
    return [e.event for e in _encounters(db, scope) if e.kind in EncounterKind.VISITS and e.tcm]


def encounter_stays(db: Session, scope: Scope) -> list[Event]:
    """Inpatient stays at the members, by discharge day (出院人次)."""
    return [e.event for e in _encounters(db, scope) if e.kind == EncounterKind.inpatient]


def encounter_stay_cost(db: Session, scope: Scope) -> list[Event]:
    return [replace(e.event, value=e.cost) for e in _encounters(db, scope) if e.kind == EncounterKind.inpatient]


def encounter_insurance(db: Session, scope: Scope) -> list[Event]:
    """The insurance fund's payments for encounters at the members (every kind)."""
    return [replace(e.event, value=e.paid) for e in _encounters(db, scope)]


def encounter_insurance_grassroots(db: Session, scope: Scope) -> list[Event]:
    return [replace(e.event, value=e.paid) for e in _encounters(db, scope) if e.grassroots]


def stays_in_and_out_of_county(db: Session, scope: Scope) -> list[Event]:
    """Inpatient stays at the members and, from the register, outside the county (the denominator of 11)."""
    return encounter_stays(db, scope) + [e for e, kind, _ in _out_of_county(db, scope) if kind == EncounterKind.inpatient]


def insurance_in_and_out_of_county(db: Session, scope: Scope) -> list[Event]:
    """The fund's payments at the members and, from the register, outside the county (the denominator of 8)."""
    return encounter_insurance(db, scope) + [replace(e, value=paid) for e, _, paid in _out_of_county(db, scope)]


Measure = Callable[[Session, Scope], list[Event]]

# name → (the rows it counts, how its events combine: "sum" or "median")
MEASURES: dict[str, tuple[Measure, str]] = {
    "referrals_up": (referrals_up, "sum"),
    "referrals_down": (referrals_down, "sum"),
    "referrals_down_inpatient": (referrals_down_inpatient, "sum"),
    "referrals_down_outpatient": (referrals_down_outpatient, "sum"),
    "referral_loops_closed": (referral_loops_closed, "sum"),
    "referral_receive_hours": (referral_receive_hours, "median"),
    "referral_decide_hours": (referral_decide_hours, "median"),
    "slots_offered": (slots_offered, "sum"),
    "slots_reserved": (slots_reserved, "sum"),
    "slots_reserved_booked": (slots_reserved_booked, "sum"),
    "remote_reads": (remote_reads, "sum"),
    "remote_reads_imaging_ecg": (remote_reads_imaging_ecg, "sum"),
    "remote_read_tat_minutes": (remote_read_tat_minutes, "median"),
    "consultations": (consultations, "sum"),
    "recognition_decisions": (recognition_decisions, "sum"),
    "recognition_reused": (recognition_reused, "sum"),
    "recognition_saved_yuan": (recognition_saved_yuan, "sum"),
    "assistance_person_days": (assistance_person_days, "sum"),
    "assistance_clinics": (assistance_clinics, "sum"),
    "assistance_patients": (assistance_patients, "sum"),
    "assistance_surgeries": (assistance_surgeries, "sum"),
    "assistance_surgeries_grade34": (assistance_surgeries_grade34, "sum"),
    "assistance_teaching": (assistance_teaching, "sum"),
    "assistance_trainees": (assistance_trainees, "sum"),
    "assistance_departments": (assistance_departments, "sum"),
    "assistance_techniques": (assistance_techniques, "sum"),
    "assistance_money": (assistance_money, "sum"),
    "assistance_seconded_doctors": (assistance_seconded_doctors, "distinct"),
    "residents_10k": (residents_10k, "latest"),
    "chronic_managed_htn": (chronic_managed_htn, "sum"),
    "chronic_standard_htn": (chronic_standard_htn, "sum"),
    "chronic_bp_controlled": (chronic_bp_controlled, "sum"),
    "chronic_managed_dm": (chronic_managed_dm, "sum"),
    "chronic_standard_dm": (chronic_standard_dm, "sum"),
    "chronic_glucose_controlled": (chronic_glucose_controlled, "sum"),
    "chronic_managed_people": (chronic_managed_people, "sum"),
    "chronic_people_admitted": (chronic_people_admitted, "sum"),
    "chronic_follow_ups_due": (chronic_follow_ups_due, "sum"),
    "chronic_follow_ups_done": (chronic_follow_ups_done, "sum"),
    "encounter_visits": (encounter_visits, "sum"),
    "encounter_visits_grassroots": (encounter_visits_grassroots, "sum"),
    "encounter_visits_tcm": (encounter_visits_tcm, "sum"),
    "encounter_stays": (encounter_stays, "sum"),
    "encounter_stay_cost": (encounter_stay_cost, "sum"),
    "encounter_insurance": (encounter_insurance, "sum"),
    "encounter_insurance_grassroots": (encounter_insurance_grassroots, "sum"),
    "stays_in_and_out_of_county": (stays_in_and_out_of_county, "sum"),
    "insurance_in_and_out_of_county": (insurance_in_and_out_of_county, "sum"),
}


# how finely a measure's rows can be split: "department" (each row has its member institutions and department),
# "member" (its member institutions only) or "alliance" (a figure of the whole alliance: the lead's released slots)
LEVELS: dict[str, str] = {name: "department" for name in MEASURES if name.startswith(("referral", "remote_read",
                                                                                     "consultations", "recognition",
                                                                                     "encounter"))}
LEVELS.update({name: "member" for name in MEASURES if name.startswith(("assistance", "chronic", "stays_", "insurance_"))})
LEVELS.update({name: "alliance" for name in MEASURES if name.startswith("slots")})
LEVELS["residents_10k"] = "alliance"
RANK = {"alliance": 0, "member": 1, "department": 2}


def splittable(measure: str, member: int | None, department: int | None) -> bool:
    """Whether the measure's rows can be narrowed to a member (and a department)."""
    wanted = 2 if department is not None else 1 if member is not None else 0
    return RANK[LEVELS[measure]] >= wanted


def narrow(events: list[Event], member: int | None, department: int | None) -> list[Event]:
    """The events that involve the member (one of its parties) and, when given, the department."""
    return [e for e in events if (member is None or member in e.parties)
            and (department is None or e.department == department)]


def combine(values: list[float], how: str) -> float | None:
    if not values:
        return 0.0 if how == "sum" else None
    return float(sum(values)) if how == "sum" else float(median(values))


def total(events: list[Event], how: str) -> float | None:
    """The events combined as their measure says: "sum" or "median" of their values, "distinct" people (`who`) or
    the "latest" event's value."""
    if how == "distinct":
        return float(len({e.who for e in events}))
    if how == "latest":
        return max(events, key=lambda e: e.day).value if events else None
    return combine([e.value for e in events], how)
