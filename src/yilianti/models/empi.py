"""Master patient index (DOMAIN.md §5b): source records, review queue, do-not-match, merge events.

`Patient` stays the golden person (one row per person, identifiers and care relationships
from every member). Each registration at a member leaves a `PatientRecord`: the
demographics as that member registered them, with its blocking keys in indexed columns.
A record belongs to exactly one person at a time: `patient_record.patient_id` is one
NOT NULL column, so two golden records can never share a source record (HAPI's bug).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.kit.crypto import BIDX_LENGTH, Encrypted
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class PatientRecord(IdMixin, CreatedMixin, Base):
    """One member's registration of a person, with blocking keys (indexed, so cost stays flat)."""

    __tablename__ = "patient_record"
    __table_args__ = (
        Index("ix_patient_record_name_year", "name_key", "birth_year"),
        Index("ix_patient_record_birth_surname", "birth_key", "surname_key"),
        Index("ix_patient_record_given_birth", "given_key", "birth_key"),
        Index("ix_patient_record_phone", "phone_key"),
        Index("ix_patient_record_patient", "patient_id"),
        Index("ix_patient_record_inst_patient", "institution_id", "patient_id"),
    )

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    # demographics as registered at that member
    name: Mapped[str] = mapped_column(String(60))
    sex: Mapped[str | None] = mapped_column(String(2))
    birth_date: Mapped[date | None] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(Encrypted())  # own phone, else the guardian's (encrypted)
    address: Mapped[str | None] = mapped_column(String(300))
    rid: Mapped[str | None] = mapped_column(Encrypted())  # valid resident ID, normalised (encrypted)
    # blocking keys (normalised; see empi/online.py keys())
    name_key: Mapped[str | None] = mapped_column(String(80))  # surname pinyin|given pinyin
    surname_key: Mapped[str | None] = mapped_column(String(40))
    given_key: Mapped[str | None] = mapped_column(String(60))
    birth_key: Mapped[str | None] = mapped_column(String(8))  # YYYYMMDD
    birth_year: Mapped[int | None] = mapped_column(Integer)
    phone_key: Mapped[str | None] = mapped_column(String(BIDX_LENGTH))  # blind index of the phone
    rid_key: Mapped[str | None] = mapped_column(String(BIDX_LENGTH))  # blind index of rid (matching compares it)
    # how the record was linked to its person
    link_method: Mapped[str] = mapped_column(String(16))  # resident_id | score | new | merge
    link_score: Mapped[float | None] = mapped_column(Float)
    rules_version: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class CandidateStatus:
    open = "open"
    confirmed = "confirmed"
    rejected = "rejected"
    superseded = "superseded"  # the two records ended up on one person another way


class MatchCandidate(IdMixin, CreatedMixin, Base):
    """A pair of records scored between the review and auto-link thresholds: a person decides."""

    __tablename__ = "match_candidate"
    __table_args__ = (
        UniqueConstraint("record_id", "other_record_id"),
        Index("ix_match_candidate_status", "status", "created_at"),
        CheckConstraint("status IN ('open','confirmed','rejected','superseded')", name="status"),
    )

    record_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient_record.id"))  # the newer record
    other_record_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient_record.id"))
    score: Mapped[float] = mapped_column(Float)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON)  # per-field weights
    rules_version: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CandidateStatus.open)
    decided_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_note: Mapped[str | None] = mapped_column(Text)
    merge_event_id: Mapped[int | None] = mapped_column(BigId)


class DoNotMatch(IdMixin, CreatedMixin, Base):
    """Two persons a steward declared different: never linked or merged (low id first)."""

    __tablename__ = "do_not_match"
    __table_args__ = (
        UniqueConstraint("patient_a_id", "patient_b_id"),
        Index("ix_do_not_match_b", "patient_b_id"),
        CheckConstraint("patient_a_id < patient_b_id", name="ordered"),
    )

    patient_a_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    patient_b_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    candidate_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("match_candidate.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    created_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))


class MergeEvent(IdMixin, Base):
    """A merge (merged → survivor) or its unmerge; `moved` lists every row that moved, per column."""

    __tablename__ = "merge_event"
    __table_args__ = (
        Index("ix_merge_event_survivor", "survivor_id"),
        Index("ix_merge_event_merged", "merged_id"),
        CheckConstraint("kind IN ('merge','unmerge')", name="kind"),
    )

    kind: Mapped[str] = mapped_column(String(8))
    survivor_id: Mapped[int] = mapped_column(BigId)  # no FK: merge bookkeeping never moves itself
    merged_id: Mapped[int] = mapped_column(BigId)
    reverses_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("merge_event.id"))  # unmerge → its merge
    undone_at: Mapped[datetime | None] = mapped_column()  # on a merge, when it was unmerged
    candidate_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("match_candidate.id"))
    moved: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"table.column": [primary keys]}
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)  # merged person's row before the merge
    reason: Mapped[str | None] = mapped_column(Text)
    by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
