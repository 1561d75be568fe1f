"""Critical-patient transfer (重症转运, DOMAIN.md §4 "Critical transfer").

A `CriticalTransfer` moves one patient from the requesting (origin) institution to the
receiving (destination) hospital. Its timeline is an append-only list of
`TransferMilestone` rows; the order of the chain is enforced by
`yilianti.transfer.service.record_milestone`, never by direct writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class CriticalTransfer(IdMixin, CreatedMixin, Base):
    __tablename__ = "critical_transfer"
    __table_args__ = (
        Index("ix_critical_transfer_origin", "origin_institution_id", "status"),
        Index("ix_critical_transfer_dest", "destination_institution_id", "status"),
        Index("ix_critical_transfer_patient", "patient_id"),
    )

    case_no: Mapped[str] = mapped_column(String(32), unique=True)  # ZY20261123-0001
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    origin_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    destination_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    referral_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("referral.id"))
    network: Mapped[str] = mapped_column(String(16), default="general")  # general | chest_pain | stroke | neonatal
    diagnosis: Mapped[str] = mapped_column(Text)
    # {"hr": 150, "bp_sys": 60, "bp_dia": 35, "spo2": 88, "rr": 60, "temp": 36.2, "gcs": 15, "weight_kg": 1.8}
    vitals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    requested_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    accepting_practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    accepting_physician: Mapped[str | None] = mapped_column(String(64))
    ward_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ward.id"))
    bed_reservation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("bed_reservation.id"))
    bed_note: Mapped[str | None] = mapped_column(String(100))
    vehicle: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(Text)
    # requested → accepted → dispatched → in_progress → handed_over | cancelled
    status: Mapped[str] = mapped_column(String(16), default="requested")
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class TransferMilestone(IdMixin, CreatedMixin, Base):
    """One timestamped step of a transfer. Append-only; each kind at most once per transfer."""

    __tablename__ = "transfer_milestone"
    __table_args__ = (
        UniqueConstraint("transfer_id", "kind"),
        Index("ix_transfer_milestone_at", "transfer_id", "at"),
    )

    transfer_id: Mapped[int] = mapped_column(BigId, ForeignKey("critical_transfer.id"))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column()
    recorded_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    recorded_by_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    note: Mapped[str | None] = mapped_column(String(300))
