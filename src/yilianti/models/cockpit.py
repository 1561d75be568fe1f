"""The alliance cockpit (驾驶舱): the indicator library and the targets set against it (DOMAIN.md §9).

`Indicator` rows are the library — what each figure means, how it is counted and which way is better;
they are loaded from `cockpit/library.yaml` (the library is data: an alliance can read, and a later
release can extend, the definitions without reading code). `IndicatorTarget` rows are the targets,
never updated: a new target is a new row from its effective date, so the history of targets stays.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, IdMixin


class Indicator(IdMixin, Base):
    __tablename__ = "indicator"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    group: Mapped[str] = mapped_column(String(32))  # referral | sinking | centres | recognition | national …
    name: Mapped[str] = mapped_column(String(100))  # Chinese
    name_en: Mapped[str] = mapped_column(String(200))
    definition: Mapped[str] = mapped_column(Text)  # the formula in words, Chinese
    numerator: Mapped[str | None] = mapped_column(String(64))  # a measure of cockpit/measures.py
    denominator: Mapped[str | None] = mapped_column(String(64))  # a measure, or none for a count
    unit: Mapped[str] = mapped_column(String(16))  # count | ratio | hours | minutes | yuan
    direction: Mapped[str] = mapped_column(String(8))  # up (higher is better) | down | none
    level: Mapped[str] = mapped_column(String(16), default="alliance")  # alliance | member | department
    source: Mapped[str] = mapped_column(String(16), default="computed")  # computed | imported
    data_source: Mapped[str] = mapped_column(String(200))  # the tables or the import it comes from
    default_target: Mapped[float | None] = mapped_column(Float)
    target_source: Mapped[str | None] = mapped_column(String(200))
    sort: Mapped[int] = mapped_column(default=0)
    # the code of the indicator whose growth over the same period a year before this one is (national 10b)
    growth_of: Mapped[str | None] = mapped_column(String(64))


class IndicatorTarget(IdMixin, Base):
    """A target of one indicator for one alliance from `effective_from` on (the newest row in force wins)."""

    __tablename__ = "indicator_target"
    __table_args__ = (UniqueConstraint("indicator_id", "alliance_id", "effective_from", "set_at"),)

    indicator_id: Mapped[int] = mapped_column(BigId, ForeignKey("indicator.id"), index=True)
    alliance_id: Mapped[int] = mapped_column(BigId, ForeignKey("alliance.id"), index=True)
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(200))  # 文件、会议纪要或章程条款
    effective_from: Mapped[date] = mapped_column(Date)
    set_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    set_at: Mapped[datetime] = mapped_column(default=clock.now)


class IndicatorFigure(IdMixin, Base):
    """A figure of an imported indicator (one the platform does not hold the data for: incomes, the insurance
    fund, mortality, the yes/no judgements) for one alliance and period, with its source and evidence. Never
    updated: a corrected figure is a new row, and the newest entered for a period is the one shown."""

    __tablename__ = "indicator_figure"

    indicator_id: Mapped[int] = mapped_column(BigId, ForeignKey("indicator.id"), index=True)
    alliance_id: Mapped[int] = mapped_column(BigId, ForeignKey("alliance.id"), index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(200))
    evidence: Mapped[str | None] = mapped_column(Text)
    entered_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    entered_at: Mapped[datetime] = mapped_column(default=clock.now)


class AssistanceKind:
    """What the lead hospital sent down (帮扶), DOMAIN.md §9."""

    posting = "posting"  # an expert posted to a member (派驻), e.g. as department co-director
    clinic = "clinic"  # clinics held (坐诊) and patients seen
    surgery = "surgery"  # surgeries guided (带教手术), with the grade 3–4 ones
    lecture = "lecture"  # lectures and training sessions (讲座、培训)
    rounds = "rounds"  # teaching rounds (教学查房)
    trainee = "trainee"  # member staff received for further study (进修)
    department = "department"  # departments co-built (共建科室)
    technique = "technique"  # a technique transferred, first done at the member on a date
    equipment = "equipment"  # equipment given or lent
    funds = "funds"  # money
    ALL = ("posting", "clinic", "surgery", "lecture", "rounds", "trainee", "department", "technique", "equipment",
           "funds")


class AssistanceRecord(IdMixin, Base):
    """One act of help from one institution of an alliance to another: who, from, to, when, how much."""

    __tablename__ = "assistance_record"

    alliance_id: Mapped[int] = mapped_column(BigId, ForeignKey("alliance.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    from_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    to_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    person: Mapped[str | None] = mapped_column(String(64))  # who went (or came, for a trainee)
    title: Mapped[str | None] = mapped_column(String(32))  # 主任医师, 副主任医师, 主治医师 …
    post: Mapped[str | None] = mapped_column(String(64))  # post held at the member: 科室副主任 …
    subject: Mapped[str | None] = mapped_column(String(200))  # the lecture's topic, the technique, the department
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    person_days: Mapped[float] = mapped_column(Float, default=0)
    sessions: Mapped[int] = mapped_column(default=0)  # clinics, lectures, rounds held
    patients: Mapped[int] = mapped_column(default=0)  # patients seen / attendees / trainees
    surgeries: Mapped[int] = mapped_column(default=0)
    surgeries_grade34: Mapped[int] = mapped_column(default=0)  # of which grade 3–4 (三、四级手术)
    amount_yuan: Mapped[float] = mapped_column(Float, default=0)
    note: Mapped[str | None] = mapped_column(Text)
    entered_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    entered_at: Mapped[datetime] = mapped_column(default=clock.now)


class CockpitRollup(IdMixin, Base):
    """A month's count and sum of one measure's rows for one alliance, per pair of member institutions and
    department (cockpit/rollup.py): the cockpit reads these for past months instead of the raw rows. Rebuilt, never
    edited."""

    __tablename__ = "cockpit_rollup"
    __table_args__ = (Index("ix_cockpit_rollup_alliance_measure_day", "alliance_id", "measure", "day"),)

    alliance_id: Mapped[int] = mapped_column(BigId)  # no foreign key: derived rows, written in bulk (0035)
    measure: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)  # the month's first day (0040: monthly)
    party_a: Mapped[int | None] = mapped_column(BigId)  # the member institutions the rows involve
    party_b: Mapped[int | None] = mapped_column(BigId)
    department_id: Mapped[int | None] = mapped_column(BigId)
    n: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)


class CockpitRollupDay(IdMixin, Base):
    """A day of an alliance that its month's rollups hold (a day with no rows has no rollup rows, only this mark)."""

    __tablename__ = "cockpit_rollup_day"
    __table_args__ = (UniqueConstraint("alliance_id", "day"),)

    alliance_id: Mapped[int] = mapped_column(BigId)  # as CockpitRollup
    day: Mapped[date] = mapped_column(Date)
    built_at: Mapped[datetime] = mapped_column(default=clock.now)
