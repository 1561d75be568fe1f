"""Shared diagnostic centres (DOMAIN.md §5): catalogue, orders, reports, lab results, imaging, quarantine.

Stable names other domains read (recognition, teleconsultation, imaging viewer / ECG):

* `DiagnosticItem` — the catalogue: `code`, `name`, `kind` (imaging | ecg | lab), `modality`,
  `loinc_code` / `local_code`, `reading_centre_institution_id`, `expected_tat_minutes`;
  `ItemPrice` — the price of an item at one member's fee standard (`price_fen`, integer fen).
* `DiagnosticOrder` — `accession_number`, `patient_id`, `item_id` / `item_code` / `item_name`, `kind`,
  `priority` (routine | urgent | stat), `status` (see diagnostics/states.py: ordered → acquired →
  transmitted → received → claimed → reported (preliminary, awaiting a second signature) → final →
  amended; cancelled), `ordering_institution_id` (the grassroots site), `ordering_user_id`,
  `ordering_practitioner_id`, `performing_institution_id` (where the study was acquired),
  `reading_centre_institution_id` (who reads it), `ordered_at`, `received_at`, `claimed_by_user_id`,
  `claimed_at`, `reported_at` (when the report became final, i.e. reached the ordering site),
  `tat_minutes` (ordered_at → reported_at, set when final), `price_fen`.
  Readers of results: `status in ("final", "amended")` and `reported_at is not None`.
* `DiagnosticReport` — one per order (`order_id` unique): `findings`, `conclusion`, `measurements`
  (JSON), `critical`, `status` (draft | preliminary | final | amended), `signed_by_user_id`,
  `signed_by_practitioner_id`, `signed_at`, `second_signer_user_id`, `second_signer_practitioner_id`,
  `second_signed_at`.
* `DiagnosticOrderHistory` — one row per status move (who, when, from, to, reason).
* `CriticalValue` — 危急值: order, lab observation or report, value text, notified / acknowledged /
  escalated (user + time).

A `DiagnosticOrder` carries the platform's accession number: HL7 OBR-2 (placer order number)
and DICOM AccessionNumber (0008,0050) link what arrives to it. Everything received over HL7
or DICOM leaves an `InboundMessage`; the ones that could not be matched are `quarantined`
and listed for a person to resolve — nothing received is silently dropped.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class DiagnosticItem(IdMixin, CreatedMixin, Base):
    """One remote item a shared centre reads (CT 头颅平扫, 12 导联心电图, 甲状腺功能 …)."""

    __tablename__ = "diagnostic_item"
    __table_args__ = (UniqueConstraint("reading_centre_institution_id", "code", name="uq_diagnostic_item_centre_code"),)

    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # imaging | ecg | lab
    modality: Mapped[str | None] = mapped_column(String(16))  # CT, DX, US, ECG, LAB ...
    loinc_code: Mapped[str | None] = mapped_column(String(32))
    local_code: Mapped[str | None] = mapped_column(String(32))
    reading_centre_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    expected_tat_minutes: Mapped[int] = mapped_column(Integer, default=24 * 60)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str | None] = mapped_column(String(300))


class ItemPrice(IdMixin, CreatedMixin, Base):
    """The price of an item at one member institution's fee standard (收费标准), in fen."""

    __tablename__ = "diagnostic_item_price"
    __table_args__ = (UniqueConstraint("item_id", "institution_id", name="uq_diagnostic_item_price_item_inst"),)

    item_id: Mapped[int] = mapped_column(BigId, ForeignKey("diagnostic_item.id"), index=True)
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    price_fen: Mapped[int] = mapped_column(Integer)
    fee_standard: Mapped[str | None] = mapped_column(String(64))  # e.g. 河北省乡镇卫生院收费标准


class DiagnosticOrder(IdMixin, CreatedMixin, Base):
    __tablename__ = "diagnostic_order"
    __table_args__ = (
        Index("ix_diagnostic_order_patient_item", "patient_id", "item_code", "reported_at"),  # B3 lookup (0016)
        Index("ix_diagnostic_order_ordering", "ordering_institution_id", "status"),
        Index("ix_diagnostic_order_centre", "reading_centre_institution_id", "status"),
    )

    accession_number: Mapped[str] = mapped_column(String(32), unique=True)
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    ordering_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    reading_centre_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    kind: Mapped[str] = mapped_column(String(16))  # imaging | ecg | lab
    modality: Mapped[str | None] = mapped_column(String(16))  # CT, MR, DX, US, ECG ...
    item_code: Mapped[str] = mapped_column(String(32))
    item_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="ordered")  # diagnostics/states.py Status
    filler_order_number: Mapped[str | None] = mapped_column(String(64))  # HL7 OBR-3, kept
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
    item_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("diagnostic_item.id"))
    priority: Mapped[str] = mapped_column(String(8), default="routine")  # routine | urgent | stat
    clinical_question: Mapped[str | None] = mapped_column(Text)
    ordering_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    ordering_practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    ordering_department_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("department.id"))
    performing_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    ordered_at: Mapped[datetime | None] = mapped_column()
    acquired_at: Mapped[datetime | None] = mapped_column()
    received_at: Mapped[datetime | None] = mapped_column()
    due_at: Mapped[datetime | None] = mapped_column()  # ordered_at + the item's expected TAT
    claimed_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    claimed_at: Mapped[datetime | None] = mapped_column()
    reported_at: Mapped[datetime | None] = mapped_column()  # the report became final
    tat_minutes: Mapped[int | None] = mapped_column(Integer)
    price_fen: Mapped[int | None] = mapped_column(Integer)
    fee_standard: Mapped[str | None] = mapped_column(String(64))


class DiagnosticOrderHistory(IdMixin, Base):
    """One row per status move of an order: who, when, from, to, why. Append-only."""

    __tablename__ = "diagnostic_order_history"
    __table_args__ = (Index("ix_diagnostic_order_history_order", "order_id", "at"),)

    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("diagnostic_order.id"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    acting_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class DiagnosticReport(IdMixin, CreatedMixin, Base):
    """The reading centre's report of one order (structured measurements in `measurements`)."""

    __tablename__ = "diagnostic_report"

    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("diagnostic_order.id"), unique=True)
    findings: Mapped[str | None] = mapped_column(Text)  # 检查所见
    conclusion: Mapped[str | None] = mapped_column(Text)  # 诊断意见
    measurements: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"HR": 72, "QTc": 410, ...}
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | preliminary | final | amended
    author_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    signed_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    signed_by_practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    signed_at: Mapped[datetime | None] = mapped_column()
    second_signer_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    second_signer_practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    second_signed_at: Mapped[datetime | None] = mapped_column()
    amendment_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class CriticalValue(IdMixin, CreatedMixin, Base):
    """危急值: must reach the ordering doctor at once and be acknowledged; escalated otherwise."""

    __tablename__ = "critical_value"
    __table_args__ = (Index("ix_critical_value_open", "acknowledged_at", "notified_at"),)

    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("diagnostic_order.id"), index=True)
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    observation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("lab_observation.id"))
    report_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("diagnostic_report.id"))
    source: Mapped[str] = mapped_column(String(8))  # hl7 | reader
    value_text: Mapped[str] = mapped_column(String(300))
    notified_to_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    notified_at: Mapped[datetime] = mapped_column(default=clock.now)
    acknowledged_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    acknowledge_note: Mapped[str | None] = mapped_column(String(300))
    escalated_to_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    escalated_at: Mapped[datetime | None] = mapped_column()


class LabObservation(IdMixin, CreatedMixin, Base):
    __tablename__ = "lab_observation"

    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("diagnostic_order.id"), index=True)
    inbound_message_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("inbound_message.id"))
    set_id: Mapped[int | None] = mapped_column(Integer)  # OBX-1
    value_type: Mapped[str | None] = mapped_column(String(8))  # OBX-2
    code: Mapped[str] = mapped_column(String(64))  # OBX-3.1
    code_system: Mapped[str | None] = mapped_column(String(32))  # OBX-3.3 (LN = LOINC, else local)
    name: Mapped[str | None] = mapped_column(String(200))  # OBX-3.2
    value: Mapped[str | None] = mapped_column(Text)  # OBX-5
    units: Mapped[str | None] = mapped_column(String(64))  # OBX-6
    reference_range: Mapped[str | None] = mapped_column(String(64))  # OBX-7
    abnormal_flags: Mapped[str | None] = mapped_column(String(16))  # OBX-8
    result_status: Mapped[str | None] = mapped_column(String(4))  # OBX-11
    observed_at: Mapped[datetime | None] = mapped_column()  # OBX-14


class ImagingStudy(IdMixin, CreatedMixin, Base):
    __tablename__ = "imaging_study"

    order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("diagnostic_order.id"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    accession_number: Mapped[str | None] = mapped_column(String(32), index=True)
    patient_identifier: Mapped[str | None] = mapped_column(String(64))  # PatientID (0010,0020)
    issuer: Mapped[str | None] = mapped_column(String(64))  # IssuerOfPatientID (0010,0021)
    modality: Mapped[str | None] = mapped_column(String(16))
    study_date: Mapped[date | None] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=clock.now)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)


class ImagingInstance(IdMixin, CreatedMixin, Base):
    __tablename__ = "imaging_instance"

    study_id: Mapped[int] = mapped_column(BigId, ForeignKey("imaging_study.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    series_instance_uid: Mapped[str | None] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int | None] = mapped_column(Integer)


class ImagingInstanceMetadata(Base):
    """The instance's WADO-RS metadata, made once at ingest (diagnostics/dicomweb/document.py): the DICOM JSON
    text with a placeholder where its URL goes, so a series' metadata is joined from rows, not parsed files."""

    __tablename__ = "imaging_instance_metadata"

    instance_id: Mapped[int] = mapped_column(BigId, ForeignKey("imaging_instance.id"), primary_key=True,
                                             autoincrement=False)
    document: Mapped[str] = mapped_column(Text)
    made_at: Mapped[datetime] = mapped_column(default=clock.now)


class InboundMessage(IdMixin, CreatedMixin, Base):
    """Every HL7 message / DICOM instance received; `quarantined` ones are listed for a person."""

    __tablename__ = "inbound_message"
    __table_args__ = (Index("ix_inbound_message_status", "status", "received_at"),
                      Index("ix_inbound_message_control", "channel", "control_id"))

    channel: Mapped[str] = mapped_column(String(8))  # hl7 | dicom
    received_at: Mapped[datetime] = mapped_column(default=clock.now)
    # stored | quarantined (AE: a person attaches it) | rejected (AR: a person re-processes or discards it) |
    # resolved | discarded (by a person) | duplicate (a resend, acknowledged again)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(String(32))  # hl7_rules.Hl7Problem
    raw: Mapped[str | None] = mapped_column(Text)  # HL7 text
    raw_bytes: Mapped[bytes | None] = mapped_column(LargeBinary)  # a refused (AR) message as received
    path: Mapped[str | None] = mapped_column(String(500))  # DICOM file
    control_id: Mapped[str | None] = mapped_column(String(64))  # MSH-10 / SOPInstanceUID
    accession_number: Mapped[str | None] = mapped_column(String(32), index=True)
    sender: Mapped[str | None] = mapped_column(String(100))  # MSH-3/4 or calling AE title
    order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("diagnostic_order.id"))
    patient_identifier: Mapped[str | None] = mapped_column(String(64))  # PID-3.1 / PatientID
    issuer: Mapped[str | None] = mapped_column(String(64))  # PID-3.4 / IssuerOfPatientID
    suggested_patient_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("patient.id"))  # exact id match
    resolved_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    resolved_at: Mapped[datetime | None] = mapped_column()
