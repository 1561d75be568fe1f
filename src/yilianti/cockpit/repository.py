"""Every query of the cockpit: the rows each measure counts, the library and the targets.

The measures read narrow rows (id, the time that dates the row, the institutions that place it in an
alliance, the value) for a period; membership on the row's own day is decided in Python with
`Membership.is_current` (the model twin of `alliance.repository.current_on`), so a member that joined or
left inside the period is counted only for its days in the alliance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from yilianti.alliance.repository import current_on
from yilianti.diagnostics.states import RESULTED
from yilianti.kit import clock
from yilianti.kit.sqltime import local_date, month_start
from yilianti.models.alliance import GRASSROOTS_KINDS, Institution, Membership
from yilianti.models.chronic import ChronicRegistration
from yilianti.models.cockpit import (
    AssistanceRecord,
    CockpitRollup,
    CockpitRollupDay,
    Indicator,
    IndicatorFigure,
    IndicatorTarget,
)
from yilianti.models.consultation import Consultation
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.encounter import Encounter, EncounterKind, OutOfCountyVisit
from yilianti.models.patient import Patient
from yilianti.models.recognition import RecognitionDecision
from yilianti.models.referral import Direction, Referral, ReferralHistory
from yilianti.models.workforce import PracticeSite, Practitioner
from yilianti.referral.states import Status as RS


def library(db: Session) -> list[Indicator]:
    return list(db.scalars(select(Indicator).order_by(Indicator.sort, Indicator.code)))


def indicator_by_code(db: Session, code: str) -> Indicator | None:
    return db.scalar(select(Indicator).where(Indicator.code == code))


def targets_of(db: Session, alliance_id: int) -> list[IndicatorTarget]:
    """Every target ever set for the alliance, newest first (the history)."""
    return list(db.scalars(select(IndicatorTarget).where(IndicatorTarget.alliance_id == alliance_id)
                           .order_by(IndicatorTarget.effective_from.desc(), IndicatorTarget.set_at.desc())))


def referrals_between(db: Session, start: datetime, end: datetime,
                      institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    """Submitted referrals between member institutions: (id, direction, submitted_at, from, to, after an
    admission, receiving department) — "after an admission" says the up-referral a down-referral closes had
    reserved a bed."""
    up = aliased(Referral)
    rows = db.execute(
        select(Referral.id, Referral.direction, Referral.submitted_at, Referral.from_institution_id,
               Referral.to_institution_id, up.bed_reservation_id.is_not(None), Referral.to_department_id)
        .outerjoin(up, up.id == Referral.linked_referral_id)
        .where(*_referral_submitted(start, end),
               Referral.from_institution_id.in_(institutions), Referral.to_institution_id.in_(institutions)))
    return [(i, d, at, f, t, bool(adm), dep) for i, d, at, f, t, adm, dep in rows]


def referral_moves(db: Session, start: datetime, end: datetime, institutions: Sequence[int],
                   moves: Sequence[tuple[str | None, str]]) -> list[tuple[Any, ...]]:
    """History steps of referrals submitted in the period between members: (referral id, submitted_at, from,
    to, from_status, to_status, at, receiving department) for the given (from_status, to_status) moves."""
    wanted = [and_(ReferralHistory.from_status.is_(None) if a is None else ReferralHistory.from_status == a,
                   ReferralHistory.to_status == b) for a, b in moves]
    rows = db.execute(
        select(Referral.id, Referral.submitted_at, Referral.from_institution_id, Referral.to_institution_id,
               ReferralHistory.from_status, ReferralHistory.to_status, ReferralHistory.at, Referral.to_department_id)
        .join(ReferralHistory, _history())
        .where(*_referral_submitted(start, end),
               Referral.from_institution_id.in_(institutions), Referral.to_institution_id.in_(institutions),
               or_(*wanted)))
    return [tuple(r) for r in rows]


def loops_closed_between(db: Session, start: datetime, end: datetime,
                         institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    """Referrals closed after their outcome came back, by the time of closing: (id, closed at, from, to,
    receiving department)."""
    rows = db.execute(
        select(Referral.id, ReferralHistory.at, Referral.from_institution_id, Referral.to_institution_id,
               Referral.to_department_id)
        .join(ReferralHistory, _history())
        .where(*_loop_closed(start, end), Referral.from_institution_id.in_(institutions), Referral.to_institution_id.in_(institutions)))
    return [tuple(r) for r in rows]


def _remote_read(start: datetime, end: datetime) -> tuple[Any, ...]:
    """A remote read in the period: resulted by a shared centre other than the ordering institution."""
    return (DiagnosticOrder.status.in_(sorted(RESULTED)), DiagnosticOrder.reading_centre_institution_id.is_not(None),
            DiagnosticOrder.reading_centre_institution_id != DiagnosticOrder.ordering_institution_id,
            DiagnosticOrder.reported_at >= start, DiagnosticOrder.reported_at < end)


def remote_reads_between(db: Session, start: datetime, end: datetime,
                         institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    """Orders read by a shared centre and resulted in the period: (id, reported_at, ordering institution,
    centre, TAT minutes, kind: imaging | ecg | lab, ordering department)."""
    rows = db.execute(
        select(DiagnosticOrder.id, DiagnosticOrder.reported_at, DiagnosticOrder.ordering_institution_id,
               DiagnosticOrder.reading_centre_institution_id, DiagnosticOrder.tat_minutes, DiagnosticOrder.kind,
               DiagnosticOrder.ordering_department_id)
        .where(*_remote_read(start, end), DiagnosticOrder.ordering_institution_id.in_(institutions)))
    return [tuple(r) for r in rows]


def consultations_between(db: Session, start: datetime, end: datetime,
                          institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    rows = db.execute(
        select(Consultation.id, Consultation.created_at, Consultation.requesting_institution_id,
               Consultation.consulted_institution_id, Consultation.department_id)
        .where(*_consulted(start, end), Consultation.requesting_institution_id.in_(institutions)))
    return [tuple(r) for r in rows]


def recognition_decisions_between(db: Session, start: datetime, end: datetime,
                                  institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    """(id, decided at, deciding institution, reuse | retest, money saved in fen, department)."""
    rows = db.execute(
        select(RecognitionDecision.id, RecognitionDecision.decided_at, RecognitionDecision.institution_id,
               RecognitionDecision.decision, RecognitionDecision.price_saved_fen, RecognitionDecision.department_id)
        .where(*_decided(start, end), RecognitionDecision.institution_id.in_(institutions)))
    return [tuple(r) for r in rows]


def _grassroots() -> Any:
    """The institution is grassroots (基层) — `alliance.service.is_grassroots` in SQL: by its kind."""
    return Institution.kind.in_(sorted(GRASSROOTS_KINDS))


def _encountered(first: date, last: date) -> tuple[Any, ...]:
    """An encounter dated in [first, last] (`encounters_between`, the rollups)."""
    return Encounter.day >= first, Encounter.day <= last


def _registered(first: date, last: date) -> tuple[Any, ...]:
    """An out-of-county visit dated in [first, last] (`out_of_county_between`, the rollups)."""
    return OutOfCountyVisit.day >= first, OutOfCountyVisit.day <= last


def encounters_between(db: Session, first: date, last: date, institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    """Encounters at the institutions dated (`Encounter.day`, models/encounter.counted_on) in [first, last]: (id, day,
    institution, department, kind, TCM, total cost, insurance paid, grassroots institution)."""
    rows = db.execute(
        select(Encounter.id, Encounter.day, Encounter.institution_id, Encounter.department_id, Encounter.kind,
               Encounter.tcm, Encounter.total_cost, Encounter.insurance_paid, _grassroots())
        .join(Institution, Institution.id == Encounter.institution_id)
        .where(*_encountered(first, last), Encounter.institution_id.in_(institutions)))
    return [(i, d, inst, dep, k, bool(tcm), cost, paid, bool(g)) for i, d, inst, dep, k, tcm, cost, paid, g in rows]


def out_of_county_between(db: Session, alliance_ids: Sequence[int], first: date, last: date) -> list[tuple[Any, ...]]:
    """The alliances' out-of-county register dated in [first, last]: (id, day, home institution, kind, total cost,
    insurance paid)."""
    rows = db.execute(
        select(OutOfCountyVisit.id, OutOfCountyVisit.day, OutOfCountyVisit.home_institution_id, OutOfCountyVisit.kind,
               OutOfCountyVisit.total_cost, OutOfCountyVisit.insurance_paid)
        .where(OutOfCountyVisit.alliance_id.in_(alliance_ids), *_registered(first, last)))
    return [tuple(r) for r in rows]


def _numbered(db: Session, model: Any, where: Any, column: Any, numbers: Sequence[str]) -> list[Any]:
    out: list[Any] = []
    wanted = sorted(set(numbers))
    for i in range(0, len(wanted), 1000):
        out += list(db.scalars(select(model).where(where, column.in_(wanted[i:i + 1000]))))
    return out


def insert_rows(db: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    """New rows of an import in one executemany INSERT … RETURNING id (the batch's ids, for its audit)."""
    if not rows:
        return []
    db.flush()  # the updates of the same batch first
    return list(db.scalars(insert(model).returning(model.id), rows))


def encounters_numbered(db: Session, institution_id: int, numbers: Sequence[str]) -> list[Encounter]:
    """The institution's encounters already imported under these HIS numbers."""
    return _numbered(db, Encounter, Encounter.institution_id == institution_id, Encounter.source_no, numbers)


def register_numbered(db: Session, alliance_id: int, numbers: Sequence[str]) -> list[OutOfCountyVisit]:
    """The alliance's out-of-county register rows already imported under these settlement numbers."""
    return _numbered(db, OutOfCountyVisit, OutOfCountyVisit.alliance_id == alliance_id, OutOfCountyVisit.settlement_no,
                     numbers)


def encounter_summary(db: Session, institutions: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """Per institution, what has been imported: (encounters, matched to a person, last day counted, last import)."""
    if not institutions:
        return {}
    rows = db.execute(select(Encounter.institution_id, func.count(), func.count(Encounter.patient_id),
                             func.max(Encounter.day), func.max(Encounter.imported_at))
                      .where(Encounter.institution_id.in_(institutions)).group_by(Encounter.institution_id))
    return {r[0]: tuple(r[1:]) for r in rows}


def register_summary(db: Session, alliance_id: int) -> tuple[Any, ...]:
    """The alliance's out-of-county register: (rows, inpatient stays, last day counted, last import)."""
    row = db.execute(select(func.count(), func.count(case((OutOfCountyVisit.kind == EncounterKind.inpatient, 1))),
                            func.max(OutOfCountyVisit.day), func.max(OutOfCountyVisit.imported_at))
                     .where(OutOfCountyVisit.alliance_id == alliance_id)).one()
    return tuple(row)


def _newest_entry_first(stmt: Any) -> Any:
    return stmt.order_by(IndicatorFigure.entered_at.desc(), IndicatorFigure.id.desc())


def figures_of(db: Session, alliance_id: int, start: date, end: date) -> list[IndicatorFigure]:
    """Imported figures of the alliance whose period ends inside [start, end], newest entry first."""
    return list(db.scalars(_newest_entry_first(select(IndicatorFigure).where(
        IndicatorFigure.alliance_id == alliance_id, IndicatorFigure.period_end >= start,
        IndicatorFigure.period_end <= end))))


def in_force(figures: Sequence[IndicatorFigure]) -> list[IndicatorFigure]:
    """Of imported figures (newest entry first), the one in force per indicator and period — a correction entered
    later replaces the figure of the same period — oldest period first."""
    out: dict[tuple[int, date, date], IndicatorFigure] = {}
    for f in figures:
        out.setdefault((f.indicator_id, f.period_start, f.period_end), f)
    return sorted(out.values(), key=lambda f: (f.period_end, f.period_start))


def figures_in_force(db: Session, alliance_id: int, code: str, end: date) -> list[IndicatorFigure]:
    """The figures in force of one imported indicator whose period began by `end`, oldest period first."""
    return in_force(db.scalars(_newest_entry_first(
        select(IndicatorFigure).join(Indicator, Indicator.id == IndicatorFigure.indicator_id)
        .where(IndicatorFigure.alliance_id == alliance_id, Indicator.code == code,
               IndicatorFigure.period_start <= end))).all())


def assistance_between(db: Session, alliance_id: int, start: date, end: date, kind: str | None = None) -> list[AssistanceRecord]:
    """Help recorded for the alliance that overlaps [start, end] (a posting that began earlier and still runs
    counts), newest first."""
    stmt = select(AssistanceRecord).where(
        AssistanceRecord.alliance_id == alliance_id, AssistanceRecord.start_date <= end,
        or_(AssistanceRecord.end_date.is_(None), AssistanceRecord.end_date >= start,
            AssistanceRecord.start_date >= start))
    if kind:
        stmt = stmt.where(AssistanceRecord.kind == kind)
    return list(db.scalars(stmt.order_by(AssistanceRecord.start_date.desc(), AssistanceRecord.id.desc())))


def rostered_sites(db: Session, institutions: Sequence[int], start: date,
                   end: date) -> list[tuple[Any, ...]]:
    """Multi-site practice rosters between members, for the person-days sent down: (site id, practitioner,
    home institution, weekday, period, starts_on, ends_on, site institution) of rosters away from home."""
    rows = db.execute(
        select(PracticeSite.id, PracticeSite.practitioner_id, Practitioner.home_institution_id, PracticeSite.weekday,
               PracticeSite.period, PracticeSite.starts_on, PracticeSite.ends_on, PracticeSite.institution_id)
        .join(Practitioner, Practitioner.id == PracticeSite.practitioner_id)
        .where(PracticeSite.institution_id.in_(institutions), Practitioner.home_institution_id.in_(institutions),
               PracticeSite.institution_id != Practitioner.home_institution_id, PracticeSite.weekday.is_not(None),
               or_(PracticeSite.starts_on.is_(None), PracticeSite.starts_on <= end),
               or_(PracticeSite.ends_on.is_(None), PracticeSite.ends_on >= start)))
    return [tuple(r) for r in rows]


# ------------------------------------------------------------------------------------------ drill-down
# The rows behind a figure, by table: (id, what, status code, department, patient id or None). The day, value and
# institutions come from the figure's events; these add what a reader needs to recognise the row.


def _detail_statement(table: str, ids: Sequence[int]) -> Any:
    if table == "referral":
        return select(Referral.id, Referral.direction, Referral.status, Referral.to_department_id, Referral.patient_id) \
            .where(Referral.id.in_(ids))
    if table == "diagnostic_order":
        return select(DiagnosticOrder.id, DiagnosticOrder.item_name, DiagnosticOrder.status,
                      DiagnosticOrder.ordering_department_id, DiagnosticOrder.patient_id) \
            .where(DiagnosticOrder.id.in_(ids))
    if table == "consultation":
        return select(Consultation.id, Consultation.kind, Consultation.status, Consultation.department_id,
                      Consultation.patient_id).where(Consultation.id.in_(ids))
    if table == "recognition_decision":
        return select(RecognitionDecision.id, RecognitionDecision.requested_code, RecognitionDecision.decision,
                      RecognitionDecision.department_id, RecognitionDecision.patient_id) \
            .where(RecognitionDecision.id.in_(ids))
    if table == "chronic_registration":
        return select(ChronicRegistration.id, ChronicRegistration.condition, null(), null(),
                      ChronicRegistration.patient_id).where(ChronicRegistration.id.in_(ids))
    if table == "assistance_record":
        return select(AssistanceRecord.id, AssistanceRecord.person, AssistanceRecord.kind, null(), null()) \
            .where(AssistanceRecord.id.in_(ids))
    if table == "encounter":
        return select(Encounter.id, Encounter.source_no, Encounter.kind, Encounter.department_id, Encounter.patient_id) \
            .where(Encounter.id.in_(ids))
    if table == "out_of_county_visit":
        return select(OutOfCountyVisit.id, OutOfCountyVisit.hospital, OutOfCountyVisit.kind, null(), null()) \
            .where(OutOfCountyVisit.id.in_(ids))
    if table == "indicator_figure":
        return select(IndicatorFigure.id, IndicatorFigure.source, null(), null(), null()) \
            .where(IndicatorFigure.id.in_(ids))
    if table == "practice_site":
        return select(PracticeSite.id, Practitioner.name, PracticeSite.period, PracticeSite.department_id, null()) \
            .join(Practitioner, Practitioner.id == PracticeSite.practitioner_id).where(PracticeSite.id.in_(ids))
    raise ValueError(table)


def row_details(db: Session, table: str, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """The drill-down's columns of the given rows of `table`, by id (ids in chunks: an export may ask for many)."""
    out: dict[int, tuple[Any, ...]] = {}
    wanted = sorted(set(ids))
    for i in range(0, len(wanted), 1000):
        for row in db.execute(_detail_statement(table, wanted[i:i + 1000])):
            out[row[0]] = tuple(row)
    return out


def readable_patient_names(db: Session, readable: Any, ids: Sequence[int]) -> dict[int, str]:
    """Names of the patients among `ids` that pass `readable` (authz.policy.readable: the one scoping rule)."""
    if not ids:
        return {}
    return {i: n for i, n in db.execute(select(Patient.id, Patient.name).where(Patient.id.in_(sorted(set(ids))),
                                                                                 readable))}



# ------------------------------------------------------------------------------------------ monthly rollups

# the rollups are keyed finer than some measures (a down-referral counts in "down" and in one of its splits; a
# recognition decision in "decisions" and, reused, in "reused"): measure → the keys it sums (cockpit/rollup.py);
# a measure not named here is rolled up under its own name
ROLLUP_KEYS = {"referrals_up": ("referral:up",),
               "referrals_down": ("referral:down:admitted", "referral:down:outpatient"),
               "referrals_down_inpatient": ("referral:down:admitted",),
               "referrals_down_outpatient": ("referral:down:outpatient",),
               "remote_reads": ("remote_reads:imaging_ecg", "remote_reads:other"),
               "remote_reads_imaging_ecg": ("remote_reads:imaging_ecg",),
               "recognition_decisions": ("recognition:reuse", "recognition:retest"),
               "recognition_reused": ("recognition:reuse",),
               "encounter_visits": ("encounter:visit:grassroots", "encounter:visit:grassroots:tcm", "encounter:visit:other",
                                    "encounter:visit:other:tcm"),
               "encounter_visits_grassroots": ("encounter:visit:grassroots", "encounter:visit:grassroots:tcm"),
               "encounter_visits_tcm": ("encounter:visit:grassroots:tcm", "encounter:visit:other:tcm"),
               "encounter_stays": ("encounter:stay",),
               "encounter_stay_cost": ("encounter:stay_cost",),
               "encounter_insurance": ("encounter:insurance:grassroots", "encounter:insurance:other"),
               "encounter_insurance_grassroots": ("encounter:insurance:grassroots",),
               "stays_in_and_out_of_county": ("encounter:stay", "out_of_county:stay"),
               "insurance_in_and_out_of_county": ("encounter:insurance:grassroots", "encounter:insurance:other",
                                                  "out_of_county:insurance")}
CENTRE_KINDS = ("imaging", "ecg")  # national indicator (5): the imaging and ECG centres (lab excluded)
REUSE = "reuse"
ROLLUP_WORK_MEM = "64MB"


def _member(alliance_ids: Sequence[int], institution: Any, day: Any, alliance: Any = None) -> tuple[Any, Any]:
    """A membership alias and its join: `institution` a member, on the row's local `day` (`current_on`, the SQL
    twin of `Membership.is_current`), of one of the alliances (or of `alliance`, the other side's)."""
    m = aliased(Membership)
    which = m.alliance_id.in_(alliance_ids) if alliance is None else m.alliance_id == alliance
    return m, and_(m.institution_id == institution, current_on(day, m), which)


@dataclass(frozen=True)
class Family:
    """One INSERT … SELECT … GROUP BY of the rollups: `rows(start, end)` gives the rows a family of measures counts
    — (k: the rollup key, d: the local day that dates the row, f, t: its institutions, dep, v: its value) — with the
    filters of `between` (the measures' query) taken from the clause both use, never written twice; `sides`: the
    institutions that must be members on the row's day (2: both, as a referral's; 1: f; 0: none, the row carries
    its alliance `a`, as the out-of-county register's); `keys`: the rollup keys
    it writes (tests/cockpit/test_rollup.py checks every rolled measure has a family, and each clause is shared).
    `rows` are grouped by `_groups_of`; a family may group them itself (`groups`)."""

    rows: Callable[[datetime, datetime], Any] | None
    between: Callable[..., Any]
    sides: int
    keys: tuple[str, ...]
    # instead of `rows`, the family's rows already grouped by `bucket(day)`: (b, k, f, t, dep, n, v), `a` first when
    # the rows carry their alliance — for a family that counts each row several ways (one scan, the ways taken per
    # group, not per row)
    groups: Callable[[datetime, datetime, Callable[[Any], Any]], Any] | None = None


def _referral_submitted(start: datetime, end: datetime) -> tuple[Any, ...]:
    """A referral submitted in the period (`referrals_between`, `referral_moves`, the rollups)."""
    return Referral.submitted_at >= start, Referral.submitted_at < end


def _history() -> Any:
    """A referral's history steps (`referral_moves`, `loops_closed_between`, the rollups)."""
    return ReferralHistory.referral_id == Referral.id


def _loop_closed(start: datetime, end: datetime) -> tuple[Any, ...]:
    """A referral closed after its outcome came back, in the period (`loops_closed_between`, the rollups)."""
    return (ReferralHistory.from_status == RS.outcome_returned, ReferralHistory.to_status == RS.closed,
            ReferralHistory.at >= start, ReferralHistory.at < end)


def _consulted(start: datetime, end: datetime) -> tuple[Any, ...]:
    """A consultation requested in the period (`consultations_between`, the rollups)."""
    return Consultation.created_at >= start, Consultation.created_at < end


def _decided(start: datetime, end: datetime) -> tuple[Any, ...]:
    """A recognition decision taken in the period (`recognition_decisions_between`, the rollups)."""
    return RecognitionDecision.decided_at >= start, RecognitionDecision.decided_at < end


def _referral_rows(start: datetime, end: datetime) -> Any:
    """`referrals_between` + `measures._referrals`: an up-referral, or a down-referral split by whether the
    up-referral it closes had reserved a bed."""
    # the up-referrals that reserved a bed (few, a partial index): a hashed subplan probed per down-referral, not a
    # self-join of every referral (which the planner, expecting one row, made a nested loop over every referral)
    admitted = select(Referral.id).where(Referral.bed_reservation_id.is_not(None)).scalar_subquery()
    key = case((Referral.direction == Direction.up, literal("referral:up")),
               (Referral.linked_referral_id.in_(admitted), literal("referral:down:admitted")),
               else_=literal("referral:down:outpatient"))
    return (select(key.label("k"), local_date(Referral.submitted_at).label("d"), Referral.from_institution_id.label("f"),
                   Referral.to_institution_id.label("t"), Referral.to_department_id.label("dep"),
                   literal(1.0).label("v"))
            .where(*_referral_submitted(start, end)))


def _loop_rows(start: datetime, end: datetime) -> Any:
    """`loops_closed_between` + `measures.referral_loops_closed`: dated by the closing."""
    return (select(literal("referral_loops_closed").label("k"), local_date(ReferralHistory.at).label("d"),
                   Referral.from_institution_id.label("f"), Referral.to_institution_id.label("t"),
                   Referral.to_department_id.label("dep"), literal(1.0).label("v"))
            .select_from(Referral).join(ReferralHistory, _history())
            .where(*_loop_closed(start, end)))


def _read_rows(start: datetime, end: datetime) -> Any:
    """`remote_reads_between` + `measures._reads`: dated by the report, the ordering side the member."""
    key = case((DiagnosticOrder.kind.in_(CENTRE_KINDS), literal("remote_reads:imaging_ecg")),
               else_=literal("remote_reads:other"))
    return (select(key.label("k"), local_date(DiagnosticOrder.reported_at).label("d"),
                   DiagnosticOrder.ordering_institution_id.label("f"),
                   DiagnosticOrder.reading_centre_institution_id.label("t"),
                   DiagnosticOrder.ordering_department_id.label("dep"), literal(1.0).label("v"))
            .where(*_remote_read(start, end)))


def _consultation_rows(start: datetime, end: datetime) -> Any:
    """`consultations_between` + `measures.consultations`: the requesting side the member."""
    return (select(literal("consultations").label("k"), local_date(Consultation.created_at).label("d"),
                   Consultation.requesting_institution_id.label("f"), Consultation.consulted_institution_id.label("t"),
                   Consultation.department_id.label("dep"), literal(1.0).label("v"))
            .where(*_consulted(start, end)))


def _recognition_rows(start: datetime, end: datetime) -> Any:
    """`recognition_decisions_between` + `measures._decisions`: the deciding member; each decision counted under its
    kind, and a reuse's money saved (yuan) under its own key."""

    def rows(key: Any, value: Any) -> Any:
        return (select(key.label("k"), local_date(RecognitionDecision.decided_at).label("d"),
                       RecognitionDecision.institution_id.label("f"), cast(null(), BigInteger).label("t"),
                       RecognitionDecision.department_id.label("dep"), value.label("v"))
                .where(*_decided(start, end)))

    saved = cast(func.coalesce(RecognitionDecision.price_saved_fen, 0), Float) / 100
    return union_all(rows(case((RecognitionDecision.decision == REUSE, literal("recognition:reuse")),
                               else_=literal("recognition:retest")), literal(1.0)),
                     rows(literal("recognition_saved_yuan"), saved).where(RecognitionDecision.decision == REUSE))


def _local_days(start: datetime, end: datetime) -> tuple[date, date]:
    """The local days of [start, end): the first and the one after the last (the imported rows carry local days)."""
    return clock.to_local(start).date(), clock.to_local(end).date()


def _facets() -> Any:
    """Three rows (i = 1, 2, 3): joined to a row, the three ways an encounter is counted, from one scan of it."""
    return union_all(*(select(literal(i).label("i")) for i in (1, 2, 3))).subquery("facet")


def _encounter_groups(start: datetime, end: datetime, bucket: Callable[[Any], Any]) -> Any:
    """`encounters_between` + `measures._encounters`: the institution the member; each encounter counted under its
    kind (a visit split by grassroots and TCM, or a stay), a stay's cost and every encounter's insurance paid (split
    by grassroots) under keys of their own — one scan of the encounters grouped by bucket, institution, department,
    kind and TCM, each group then taken three ways (and its institution's kind read per group)."""
    first, after = _local_days(start, end)
    rows = (select(Encounter.day.label("d"), Encounter.institution_id.label("f"), Encounter.department_id.label("dep"),
                   Encounter.kind.label("kind"), Encounter.tcm.label("tcm"), Encounter.total_cost.label("cost"),
                   Encounter.insurance_paid.label("paid"))
            .where(*_encountered(first, after - timedelta(days=1))).subquery())
    # grouped outside: PostgreSQL would not match a GROUP BY expression carrying bind parameters of its own
    by = select(bucket(rows.c.d).label("b"), rows.c.f, rows.c.dep, rows.c.kind, rows.c.tcm, rows.c.cost,
                rows.c.paid).subquery()
    keys = (by.c.b, by.c.f, by.c.dep, by.c.kind, by.c.tcm)
    g = select(*keys, func.count().label("n"), func.coalesce(func.sum(by.c.cost), 0).label("cost"),
               func.coalesce(func.sum(by.c.paid), 0).label("paid")).group_by(*keys).subquery()
    grassroots, facet = _grassroots(), _facets()
    stay = g.c.kind == EncounterKind.inpatient
    visit = case((and_(grassroots, g.c.tcm), literal("encounter:visit:grassroots:tcm")),
                 (grassroots, literal("encounter:visit:grassroots")),
                 (g.c.tcm, literal("encounter:visit:other:tcm")), else_=literal("encounter:visit:other"))
    key = case((facet.c.i == 1, case((stay, literal("encounter:stay")), else_=visit)),
               (facet.c.i == 2, literal("encounter:stay_cost")),
               (grassroots, literal("encounter:insurance:grassroots")), else_=literal("encounter:insurance:other"))
    value = case((facet.c.i == 1, g.c.n), (facet.c.i == 2, g.c.cost), else_=g.c.paid)
    return (select(g.c.b, key.label("k"), g.c.f, cast(null(), BigInteger).label("t"), g.c.dep, g.c.n,
                   cast(value, Float).label("v"))
            .select_from(g).join(Institution, Institution.id == g.c.f).join(facet, true())
            .where(or_(facet.c.i != 2, stay)))


def _out_of_county_rows(start: datetime, end: datetime) -> Any:
    """`out_of_county_between` + `measures._out_of_county`: the register's stays and insurance paid, by the resident's
    alliance (the row's own: no membership rule) and home member."""
    first, after = _local_days(start, end)
    facet = _facets()
    stay = OutOfCountyVisit.kind == EncounterKind.inpatient
    return (select(OutOfCountyVisit.alliance_id.label("a"),
                   case((facet.c.i == 1, literal("out_of_county:stay")), else_=literal("out_of_county:insurance"))
                   .label("k"), OutOfCountyVisit.day.label("d"), OutOfCountyVisit.home_institution_id.label("f"),
                   cast(null(), BigInteger).label("t"), cast(null(), BigInteger).label("dep"),
                   cast(case((facet.c.i == 1, literal(1.0)), else_=OutOfCountyVisit.insurance_paid), Float).label("v"))
            .select_from(OutOfCountyVisit).join(facet, true())
            .where(*_registered(first, after - timedelta(days=1)), facet.c.i != 2, or_(facet.c.i != 1, stay)))


ROLLUP_FAMILIES = (
    Family(_referral_rows, referrals_between, 2, ("referral:up", "referral:down:admitted", "referral:down:outpatient")),
    Family(_loop_rows, loops_closed_between, 2, ("referral_loops_closed",)),
    Family(_read_rows, remote_reads_between, 1, ("remote_reads:imaging_ecg", "remote_reads:other")),
    Family(_consultation_rows, consultations_between, 1, ("consultations",)),
    Family(_recognition_rows, recognition_decisions_between, 1,
           ("recognition:reuse", "recognition:retest", "recognition_saved_yuan")),
    Family(None, encounters_between, 1,
           ("encounter:visit:grassroots", "encounter:visit:grassroots:tcm", "encounter:visit:other",
            "encounter:visit:other:tcm", "encounter:stay", "encounter:stay_cost", "encounter:insurance:grassroots",
            "encounter:insurance:other"), _encounter_groups),
    Family(_out_of_county_rows, out_of_county_between, 0, ("out_of_county:stay", "out_of_county:insurance")),
)


def changing_months(db: Session, alliance_ids: Sequence[int]) -> list[date]:
    """The months in which a membership of the alliances begins or ends: the only months whose members differ from
    one day to another (elsewhere the members of the month's first day are those of each of its days)."""
    days = db.execute(select(Membership.joined_on, Membership.left_on).where(Membership.alliance_id.in_(alliance_ids)))
    return sorted({d.replace(day=1) for row in days for d in row if d is not None})


def insert_rollups_by_sql(db: Session, alliance_ids: Sequence[int], start: datetime, end: datetime) -> int:
    """Every rolled-up measure of the alliances for rows dated in [start, end), per month: one INSERT … SELECT …
    GROUP BY per family of measures (referrals, closed loops, remote reads, consultations, recognition), each the
    same rule as its measure's query and filter (tests/cockpit/test_rollup.py, tests/demo/test_cockpit_data.py
    compare them); the number of rollup rows written.

    Each family's rows are grouped by month before the membership rule is applied to the groups — the month's first
    day stands for its days, except in the months where a membership begins or ends (`changing_months`), whose rows
    are grouped by day and checked on their own day — so the rule is tested per group, not per row."""
    if not alliance_ids:
        return 0
    if db.get_bind().dialect.name == "postgresql":  # the groups of a rebuild fit in memory: no spill to disk
        db.execute(text(f"SET LOCAL work_mem = '{ROLLUP_WORK_MEM}'"))
    changing = changing_months(db, alliance_ids)
    conn = db.connection().execution_options(preserve_rowcount=True)
    written = 0
    for family in ROLLUP_FAMILIES:
        def bucket(d: Any, family: Family = family) -> Any:
            month = month_start(d)
            return case((month.in_(changing), d), else_=month) if changing and family.sides else month

        g = (family.groups or partial(_groups_of, family))(start, end, bucket).subquery()
        if family.sides == 0:  # the register's rows carry their alliance
            stmt = select(g.c.a, g.c.k, g.c.b.label("m"), g.c.f, g.c.t, g.c.dep, g.c.n, g.c.v).where(
                g.c.a.in_(alliance_ids))
        else:
            ma, on_a = _member(alliance_ids, g.c.f, g.c.b)
            stmt = select(ma.alliance_id.label("a"), g.c.k, month_start(g.c.b).label("m"), g.c.f, g.c.t, g.c.dep,
                          g.c.n, g.c.v).select_from(g).join(ma, on_a)
        if family.sides == 2:
            mb, on_b = _member(alliance_ids, g.c.t, g.c.b, ma.alliance_id)
            stmt = stmt.join(mb, on_b)
        member_rows = stmt.subquery()
        columns = (member_rows.c.a, member_rows.c.k, member_rows.c.m, member_rows.c.f, member_rows.c.t,
                   member_rows.c.dep)
        grouped = select(*columns, cast(func.sum(member_rows.c.n), Integer),
                         cast(func.sum(member_rows.c.v), Float)).group_by(*columns)
        result = conn.execute(insert(CockpitRollup).from_select(
            ["alliance_id", "measure", "day", "party_a", "party_b", "department_id", "n", "total"], grouped))
        written += max(int(result.rowcount or 0), 0)
    return written


def _groups_of(family: Family, start: datetime, end: datetime, bucket: Callable[[Any], Any]) -> Any:
    """A family's rows grouped by bucket (the month, or the day where memberships change), key, institutions and
    department: (b, k, f, t, dep, n, v), `a` first when the rows carry their alliance."""
    assert family.rows is not None
    rows = family.rows(start, end).subquery()
    own = (rows.c.a,) if family.sides == 0 else ()
    # grouped outside: PostgreSQL would not match a GROUP BY expression carrying bind parameters of its own
    by = select(*own, bucket(rows.c.d).label("b"), rows.c.k, rows.c.f, rows.c.t, rows.c.dep, rows.c.v).subquery()
    keys = (*((by.c.a,) if own else ()), by.c.b, by.c.k, by.c.f, by.c.t, by.c.dep)
    return select(*keys, func.count().label("n"), func.sum(by.c.v).label("v")).group_by(*keys)


def delete_rollups(db: Session, alliance_ids: Sequence[int], start: date, end: date) -> None:
    db.execute(delete(CockpitRollup).where(CockpitRollup.alliance_id.in_(alliance_ids), CockpitRollup.day >= start,
                                           CockpitRollup.day <= end))
    db.execute(delete(CockpitRollupDay).where(CockpitRollupDay.alliance_id.in_(alliance_ids),
                                              CockpitRollupDay.day >= start, CockpitRollupDay.day <= end))


def mark_built(db: Session, alliance_ids: Sequence[int], start: date, end: date, at: datetime) -> None:
    """Each day of [start, end] built for each alliance: one INSERT … SELECT over generate_series on PostgreSQL
    (VALUES of thousands of parameters took longer to parse than to write), multi-row VALUES on SQLite."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("INSERT INTO cockpit_rollup_day (alliance_id, day, built_at) SELECT a, CAST(d AS date), :at "
                        "FROM unnest(CAST(:ids AS bigint[])) a, generate_series(CAST(:start AS date), "
                        "CAST(:end AS date), interval '1 day') d"),
                   {"ids": list(alliance_ids), "start": start, "end": end, "at": at})
        return
    days = [{"alliance_id": a, "day": date.fromordinal(d), "built_at": at} for a in alliance_ids
            for d in range(start.toordinal(), end.toordinal() + 1)]
    for i in range(0, len(days), 8000):
        db.execute(insert(CockpitRollupDay).values(days[i:i + 8000]))


def built_days(db: Session, alliance_id: int, start: date, end: date) -> set[date]:
    return set(db.scalars(select(CockpitRollupDay.day).where(
        CockpitRollupDay.alliance_id == alliance_id, CockpitRollupDay.day >= start, CockpitRollupDay.day <= end)))


def count_built_days(db: Session, alliance_id: int, start: date, end: date) -> int:
    return db.scalar(select(func.count()).select_from(CockpitRollupDay).where(
        CockpitRollupDay.alliance_id == alliance_id, CockpitRollupDay.day >= start, CockpitRollupDay.day <= end)) or 0


def rollup_months(db: Session, alliance_id: int, keys: Sequence[str], start: date, end: date, member: int | None,
                  department: int | None) -> list[tuple[Any, ...]]:
    """(month's first day, sum) of the rollup keys for the months beginning in [start, end], narrowed to the rows
    involving `member` (either side) and to `department` — summed by the database, one row a month."""
    stmt = (select(CockpitRollup.day, func.sum(CockpitRollup.total))
            .where(CockpitRollup.alliance_id == alliance_id, CockpitRollup.measure.in_(keys),
                   CockpitRollup.day >= start, CockpitRollup.day <= end)
            .group_by(CockpitRollup.day))
    if member is not None:
        stmt = stmt.where(or_(CockpitRollup.party_a == member, CockpitRollup.party_b == member))
    if department is not None:
        stmt = stmt.where(CockpitRollup.department_id == department)
    return [tuple(r) for r in db.execute(stmt)]
