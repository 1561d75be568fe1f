"""Every query of the cockpit: the rows each measure counts, the library and the targets.

The measures read narrow rows (id, the time that dates the row, the institutions that place it in an
alliance, the value) for a period; membership on the row's own day is decided in Python with
`Membership.is_current` (the model twin of `alliance.repository.current_on`), so a member that joined or
left inside the period is counted only for its days in the alliance.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased

from yilianti.diagnostics.states import RESULTED
from yilianti.models.cockpit import AssistanceRecord, Indicator, IndicatorFigure, IndicatorTarget
from yilianti.models.consultation import Consultation
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.recognition import RecognitionDecision
from yilianti.models.referral import Referral, ReferralHistory
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
    admission) — the last says the up-referral a down-referral closes had reserved a bed."""
    up = aliased(Referral)
    rows = db.execute(
        select(Referral.id, Referral.direction, Referral.submitted_at, Referral.from_institution_id,
               Referral.to_institution_id, up.bed_reservation_id.is_not(None))
        .outerjoin(up, up.id == Referral.linked_referral_id)
        .where(Referral.submitted_at >= start, Referral.submitted_at < end,
               Referral.from_institution_id.in_(institutions), Referral.to_institution_id.in_(institutions)))
    return [(i, d, at, f, t, bool(adm)) for i, d, at, f, t, adm in rows]


def referral_moves(db: Session, start: datetime, end: datetime, institutions: Sequence[int],
                   moves: Sequence[tuple[str | None, str]]) -> list[tuple[Any, ...]]:
    """History steps of referrals submitted in the period between members: (referral id, submitted_at, from,
    to, from_status, to_status, at) for the given (from_status, to_status) moves."""
    wanted = [and_(ReferralHistory.from_status.is_(None) if a is None else ReferralHistory.from_status == a,
                   ReferralHistory.to_status == b) for a, b in moves]
    rows = db.execute(
        select(Referral.id, Referral.submitted_at, Referral.from_institution_id, Referral.to_institution_id,
               ReferralHistory.from_status, ReferralHistory.to_status, ReferralHistory.at)
        .join(ReferralHistory, ReferralHistory.referral_id == Referral.id)
        .where(Referral.submitted_at >= start, Referral.submitted_at < end,
               Referral.from_institution_id.in_(institutions), Referral.to_institution_id.in_(institutions),
               or_(*wanted)))
    return [tuple(r) for r in rows]


def loops_closed_between(db: Session, start: datetime, end: datetime,
                         institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    """Referrals closed after their outcome came back, by the time of closing: (id, closed at, from, to)."""
    rows = db.execute(
        select(Referral.id, ReferralHistory.at, Referral.from_institution_id, Referral.to_institution_id)
        .join(ReferralHistory, ReferralHistory.referral_id == Referral.id)
        .where(ReferralHistory.from_status == RS.outcome_returned, ReferralHistory.to_status == RS.closed,
               ReferralHistory.at >= start, ReferralHistory.at < end,
               Referral.from_institution_id.in_(institutions), Referral.to_institution_id.in_(institutions)))
    return [tuple(r) for r in rows]


def remote_reads_between(db: Session, start: datetime, end: datetime,
                         institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    """Orders read by a shared centre and resulted in the period: (id, reported_at, ordering institution,
    centre, TAT minutes, kind: imaging | ecg | lab)."""
    rows = db.execute(
        select(DiagnosticOrder.id, DiagnosticOrder.reported_at, DiagnosticOrder.ordering_institution_id,
               DiagnosticOrder.reading_centre_institution_id, DiagnosticOrder.tat_minutes, DiagnosticOrder.kind)
        .where(DiagnosticOrder.status.in_(sorted(RESULTED)), DiagnosticOrder.reading_centre_institution_id.is_not(None),
               DiagnosticOrder.reading_centre_institution_id != DiagnosticOrder.ordering_institution_id,
               DiagnosticOrder.reported_at >= start, DiagnosticOrder.reported_at < end,
               DiagnosticOrder.ordering_institution_id.in_(institutions)))
    return [tuple(r) for r in rows]


def consultations_between(db: Session, start: datetime, end: datetime,
                          institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    rows = db.execute(
        select(Consultation.id, Consultation.created_at, Consultation.requesting_institution_id,
               Consultation.consulted_institution_id)
        .where(Consultation.created_at >= start, Consultation.created_at < end,
               Consultation.requesting_institution_id.in_(institutions)))
    return [tuple(r) for r in rows]


def recognition_decisions_between(db: Session, start: datetime, end: datetime,
                                  institutions: Sequence[int]) -> list[tuple[Any, ...]]:
    """(id, decided at, deciding institution, reuse | retest, money saved in fen)."""
    rows = db.execute(
        select(RecognitionDecision.id, RecognitionDecision.decided_at, RecognitionDecision.institution_id,
               RecognitionDecision.decision, RecognitionDecision.price_saved_fen)
        .where(RecognitionDecision.decided_at >= start, RecognitionDecision.decided_at < end,
               RecognitionDecision.institution_id.in_(institutions)))
    return [tuple(r) for r in rows]


def figures_of(db: Session, alliance_id: int, start: date, end: date) -> list[IndicatorFigure]:
    """Imported figures of the alliance whose period ends inside [start, end], newest entry first."""
    return list(db.scalars(select(IndicatorFigure).where(
        IndicatorFigure.alliance_id == alliance_id, IndicatorFigure.period_end >= start,
        IndicatorFigure.period_end <= end).order_by(IndicatorFigure.entered_at.desc(), IndicatorFigure.id.desc())))


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
