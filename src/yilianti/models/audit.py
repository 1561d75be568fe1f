"""Append-only audit log (no update or delete path; database triggers refuse both)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, IdMixin


class AuditEvent(IdMixin, Base):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_at", "at"),
        Index("ix_audit_event_patient", "patient_id", "at"),
        Index("ix_audit_event_user", "user_id", "at"),
    )

    at: Mapped[datetime] = mapped_column(default=clock.now)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    username: Mapped[str | None] = mapped_column(String(64))
    acting_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    action: Mapped[str] = mapped_column(String(32))  # read | create | update | delete | login | ...
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[int | None] = mapped_column(BigId)
    access_basis: Mapped[str | None] = mapped_column(String(32))  # own | shared | grant | break_glass
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))  # web | api | job | cli


class AuditSeal(IdMixin, Base):
    """One link of the audit hash chain (audit/chain.py): the audit rows with `after_id` < id <= `to_id`,
    sealed with the previous link's hash. Append-only like the log itself (database triggers)."""

    __tablename__ = "audit_seal"

    sealed_at: Mapped[datetime] = mapped_column(default=clock.now)
    after_id: Mapped[int] = mapped_column(BigId)  # the previous link's to_id (0 for the first)
    to_id: Mapped[int] = mapped_column(BigId)
    row_count: Mapped[int]
    ids: Mapped[str] = mapped_column(Text)  # the sealed row ids as runs: "1-500,502-900"
    digests: Mapped[bytes] = mapped_column(LargeBinary)  # 16 bytes per sealed row, in id order
    algorithm: Mapped[str] = mapped_column(String(16))  # sha256 | sm3
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditJournalMark(Base):
    """How far the rows of one web process's read-audit journal (audit/batch.py) are in `audit_event`: the
    journal's last sequence number written, moved in the same transaction as the rows, so that replaying the
    journal after a crash writes each row exactly once."""

    __tablename__ = "audit_journal_mark"

    journal: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigId)
