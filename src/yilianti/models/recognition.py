"""Mutual recognition of results (检查检验结果互认, DOMAIN.md §6).

- `RecognitionItem`: a recognised item (lab or imaging) with the codes that map diagnostic
  orders and observations onto it (`RecognitionItemCode`: the diagnostics catalogue's item
  codes, LOINC codes).
- `RecognitionScope`: where recognition holds — an alliance (its current members), a city,
  a province or a region such as 京津冀 (the institutions whose province/city fall in the
  scope's `RecognitionScopeArea` rows).
- `RecognitionRule`: an item recognised in a scope, with its validity window `valid_days` (> 0).
- `QualifiedInstitution`: an institution that passed quality control for an item in a scope,
  for a period; the HR mark is decided by the QC status on the result's date.
- `RecognitionDecision`: what the ordering doctor decided — reuse a recognised result or
  re-test with a coded reason and the patient informed. The order-side mark "satisfied by
  recognition" is this row (decision = reuse) as long as diagnostics has no field for it.

Results themselves are not stored here: they are `DiagnosticOrder` rows (see
`yilianti.recognition.results` for why, and for the import of a member's own LIS/HIS results).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class RecognitionItem(IdMixin, CreatedMixin, Base):
    __tablename__ = "recognition_item"

    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # lab | imaging
    loinc: Mapped[str | None] = mapped_column(String(32))
    numeric: Mapped[bool] = mapped_column(Boolean, default=True)  # lab values carry units
    price_fen: Mapped[int | None] = mapped_column(Integer)  # fallback price when the member has none
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RecognitionItemCode(IdMixin, Base):
    """A code that means this item: a diagnostics catalogue item code (`local`) or a LOINC code (`LN`)."""

    __tablename__ = "recognition_item_code"
    __table_args__ = (UniqueConstraint("system", "code"),)

    item_id: Mapped[int] = mapped_column(BigId, ForeignKey("recognition_item.id"), index=True)
    system: Mapped[str] = mapped_column(String(8))  # local | LN
    code: Mapped[str] = mapped_column(String(64))


class RecognitionScope(IdMixin, CreatedMixin, Base):
    __tablename__ = "recognition_scope"

    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # alliance | city | province | region
    alliance_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("alliance.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RecognitionScopeArea(IdMixin, Base):
    """A province (city None) or a city of a province that belongs to a city/province/region scope."""

    __tablename__ = "recognition_scope_area"
    __table_args__ = (UniqueConstraint("scope_id", "province", "city"),)

    scope_id: Mapped[int] = mapped_column(BigId, ForeignKey("recognition_scope.id"), index=True)
    province: Mapped[str] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(String(32))


class RecognitionRule(IdMixin, CreatedMixin, Base):
    __tablename__ = "recognition_rule"
    __table_args__ = (
        UniqueConstraint("item_id", "scope_id"),
        CheckConstraint("valid_days > 0", name="valid_days_positive"),
    )

    item_id: Mapped[int] = mapped_column(BigId, ForeignKey("recognition_item.id"), index=True)
    scope_id: Mapped[int] = mapped_column(BigId, ForeignKey("recognition_scope.id"), index=True)
    valid_days: Mapped[int] = mapped_column(Integer)


class QualifiedInstitution(IdMixin, CreatedMixin, Base):
    __tablename__ = "recognition_qualified"
    __table_args__ = (
        UniqueConstraint("item_id", "scope_id", "institution_id", "qc_from"),
        CheckConstraint("qc_to >= qc_from", name="qc_period"),
        Index("ix_recognition_qualified_lookup", "institution_id", "item_id"),
    )

    item_id: Mapped[int] = mapped_column(BigId, ForeignKey("recognition_item.id"))
    scope_id: Mapped[int] = mapped_column(BigId, ForeignKey("recognition_scope.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    qc_from: Mapped[date] = mapped_column(Date)
    qc_to: Mapped[date] = mapped_column(Date)
    qc_body: Mapped[str | None] = mapped_column(String(100))  # e.g. 河北省临床检验中心室间质评


class RecognitionDecision(IdMixin, CreatedMixin, Base):
    __tablename__ = "recognition_decision"
    __table_args__ = (
        Index("ix_recognition_decision_inst_time", "institution_id", "decided_at"),
        Index("ix_recognition_decision_patient", "patient_id", "decided_at"),
        CheckConstraint("decision IN ('reuse', 'retest')", name="decision_kind"),
    )

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    item_id: Mapped[int] = mapped_column(BigId, ForeignKey("recognition_item.id"))
    requested_code: Mapped[str] = mapped_column(String(64))  # the code the doctor/HIS ordered
    order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("diagnostic_order.id"), index=True)
    referral_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("referral.id"), index=True)
    decision: Mapped[str] = mapped_column(String(8))  # reuse | retest
    reused_order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("diagnostic_order.id"))
    reused_result_date: Mapped[date | None] = mapped_column(Date)
    reused_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    scope_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("recognition_scope.id"))
    offered_count: Mapped[int] = mapped_column(Integer, default=0)  # valid recognised results shown
    reason_code: Mapped[str | None] = mapped_column(String(32))
    reason_text: Mapped[str | None] = mapped_column(Text)
    patient_informed: Mapped[bool] = mapped_column(Boolean, default=False)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    department_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("department.id"))
    decided_at: Mapped[datetime] = mapped_column(default=clock.now)
    price_saved_fen: Mapped[int] = mapped_column(Integer, default=0)
