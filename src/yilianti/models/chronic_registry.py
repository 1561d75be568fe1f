"""Chronic care beyond the visit (issue 20): the history of a registration's status, risk and TB phase, and the
screening rounds (筛查, 下乡巡诊) whose readings turn into suggested enrolments or referrals."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class ChronicRegistrationEvent(IdMixin, CreatedMixin, Base):
    """One change of a registration: its status (under care → lost, transferred, deceased, and back), its risk
    level or danger grade, or its TB treatment phase — who, when, from, to and why."""

    __tablename__ = "chronic_registration_event"

    registration_id: Mapped[int] = mapped_column(BigId, ForeignKey("chronic_registration.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # enrolled | status | risk | phase
    from_value: Mapped[str | None] = mapped_column(String(24))
    to_value: Mapped[str | None] = mapped_column(String(24))
    effective_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(300))
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))


class TbClosing(IdMixin, CreatedMixin, Base):
    """A TB treatment's closing assessment (结案评估), one per registration: when and how the treatment ended
    (the outcome: cured, completed, failed, died, lost, moved to MDR treatment), the visits due and made, the doses
    planned and taken, whether that was regular treatment (规则服药), and who assessed it when. The TB outcome
    measures count these rows."""

    __tablename__ = "chronic_tb_closing"

    registration_id: Mapped[int] = mapped_column(BigId, ForeignKey("chronic_registration.id"), unique=True)
    stopped_on: Mapped[date] = mapped_column(Date)
    outcome: Mapped[str] = mapped_column(String(16))  # visit.TB_STOP: cured | completed | failed | died | lost | mdr
    visits_due: Mapped[int | None] = mapped_column(Integer)
    visits_done: Mapped[int | None] = mapped_column(Integer)
    doses_due: Mapped[int | None] = mapped_column(Integer)
    doses_taken: Mapped[int | None] = mapped_column(Integer)
    regular: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(String(300))
    assessed_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    assessed_at: Mapped[datetime] = mapped_column()


class ChronicOutcomeMonth(IdMixin, Base):
    """One group's outcome figures as of one month's end (chronic/outcomes.Month, the Simple programme's rules),
    stored by the periodic job (chronic/outcome_months.rebuild) so the monthly charts of a large registry read a
    few rows: per institution, registry, grouping (all | team | doctor | village) and group (the team or doctor id,
    the village's name; "none" unassigned; "" for all)."""

    __tablename__ = "chronic_outcome_month"
    __table_args__ = (Index("ix_chronic_outcome_month", "institution_id", "condition", "grouping", "month",
                            "group_key", unique=True),)

    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    condition: Mapped[str] = mapped_column(String(24))
    grouping: Mapped[str] = mapped_column(String(16))
    group_key: Mapped[str] = mapped_column(String(100))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    registered: Mapped[int] = mapped_column(Integer)
    under_care: Mapped[int] = mapped_column(Integer)
    lost: Mapped[int] = mapped_column(Integer)
    cohort: Mapped[int] = mapped_column(Integer)
    controlled: Mapped[int] = mapped_column(Integer)
    uncontrolled: Mapped[int] = mapped_column(Integer)
    unmeasured: Mapped[int] = mapped_column(Integer)
    missed: Mapped[int] = mapped_column(Integer)
    due: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[date] = mapped_column(Date)  # the day the month's figures are as of (its end, or the build day)
    computed_at: Mapped[datetime] = mapped_column()


class ScreeningRound(IdMixin, CreatedMixin, Base):
    """A team's screening round in its villages (BP for residents 35+, the 65+ annual check, glucose)."""

    __tablename__ = "chronic_screening_round"
    __table_args__ = (Index("ix_screening_round_inst", "institution_id", "held_on"),)

    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    team_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("family_doctor_team.id"))
    kind: Mapped[str] = mapped_column(String(16))  # bp35 | elderly65 | glucose
    village: Mapped[str | None] = mapped_column(String(100))
    held_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    created_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))


class ScreeningRecord(IdMixin, CreatedMixin, Base):
    """One resident seen in a round: the readings, what they show, and what the responsible doctor did."""

    __tablename__ = "chronic_screening_record"
    __table_args__ = (Index("ix_screening_record_round", "round_id", "patient_id", unique=True),
                      Index("ix_screening_record_patient", "patient_id", "measured_on"))

    round_id: Mapped[int] = mapped_column(BigId, ForeignKey("chronic_screening_round.id"))
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    measured_on: Mapped[date] = mapped_column(Date)
    sbp: Mapped[int | None] = mapped_column(Integer)
    dbp: Mapped[int | None] = mapped_column(Integer)
    fasting_glucose: Mapped[float | None] = mapped_column(Float)
    finding: Mapped[str] = mapped_column(String(16))  # normal | raised_bp | raised_glucose | urgent
    suggestion: Mapped[str | None] = mapped_column(String(24))  # enrol_hypertension | enrol_diabetes | refer
    outcome: Mapped[str] = mapped_column(String(16), default="none")  # none | pending | enrolled | referred | dismissed
    handled_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    handled_at: Mapped[datetime | None] = mapped_column()
    recorded_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
