"""Two-way referral (双向转诊, DOMAIN.md §4): one model for both directions.

Status changes only through `yilianti.referral.service.transition`, which writes an
append-only `ReferralHistory` row per step. A down-referral accepted at the receiving
site turns its follow-up plan into dated `FollowUpTask`s for the receiving doctor.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class Direction(StrEnum):
    up = "up"  # 上转
    down = "down"  # 下转


class Priority(StrEnum):
    routine = "routine"  # 普通
    urgent = "urgent"  # 加急
    emergency = "emergency"  # 急危重（绿色通道）


class Referral(IdMixin, CreatedMixin, Base):
    __tablename__ = "referral"
    __table_args__ = (
        Index("ix_referral_from", "from_institution_id", "status"),
        Index("ix_referral_to", "to_institution_id", "status"),
        Index("ix_referral_due", "due_at"),
        Index("ix_referral_patient", "patient_id"),
        Index("ix_referral_submitted_at", "submitted_at"),  # the cockpit's periods and daily rollups
        # the up-referrals that reserved a bed (few): the rollups' inpatient split of down-referrals (cockpit)
        Index("ix_referral_bed_reservation", "bed_reservation_id", postgresql_where=text("bed_reservation_id IS NOT NULL"),
              sqlite_where=text("bed_reservation_id IS NOT NULL")),
    )

    direction: Mapped[str] = mapped_column(String(8))
    linked_referral_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("referral.id"))
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    from_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    from_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    to_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    to_department_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("department.id"))
    to_practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    reason: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(16), default=Priority.routine)
    target_service: Mapped[str | None] = mapped_column(String(64))  # 门诊 | 住院 | 检查 | 康复 …
    permanent: Mapped[bool] = mapped_column(default=True)  # responsibility moves on acceptance
    # {"diagnoses": [{"icd10": "J18.9", "text": "肺炎"}], "key_results": str, "medications": [..], "allergies": [..]}
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # down-referrals: {"items": [{"due_in_days": 7, "text": "复查血常规"}]}
    follow_up_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(24), default="draft")
    due_at: Mapped[datetime | None] = mapped_column()  # deadline of the current step
    booking_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("booking.id"))
    bed_reservation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("bed_reservation.id"))
    reject_code: Mapped[str | None] = mapped_column(String(32))
    reject_comment: Mapped[str | None] = mapped_column(Text)
    outcome_note: Mapped[str | None] = mapped_column(Text)
    forwarded_to_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("referral.id"))
    submitted_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class ReferralHistory(IdMixin, Base):
    """One row per step: who, when, from, to, why. Append-only."""

    __tablename__ = "referral_history"
    __table_args__ = (Index("ix_referral_history_ref", "referral_id", "at"),)

    referral_id: Mapped[int] = mapped_column(BigId, ForeignKey("referral.id"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    acting_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class FollowUpTask(IdMixin, CreatedMixin, Base):
    """A dated task for the receiving site of a down-referral, from its follow-up plan."""

    __tablename__ = "follow_up_task"
    __table_args__ = (Index("ix_follow_up_task_inst", "institution_id", "status", "due_on"),)

    referral_id: Mapped[int] = mapped_column(BigId, ForeignKey("referral.id"), index=True)
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    due_on: Mapped[date] = mapped_column(Date)
    text: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done
    done_at: Mapped[datetime | None] = mapped_column()
