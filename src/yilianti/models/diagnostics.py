"""Shared diagnostic centres (DOMAIN.md §5): orders, lab results, imaging studies, inbound quarantine.

A `DiagnosticOrder` carries the platform's accession number: HL7 OBR-2 (placer order number)
and DICOM AccessionNumber (0008,0050) link what arrives to it. Everything received over HL7
or DICOM leaves an `InboundMessage`; the ones that could not be matched are `quarantined`
and listed for a person to resolve — nothing received is silently dropped.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class DiagnosticOrder(IdMixin, CreatedMixin, Base):
    __tablename__ = "diagnostic_order"
    __table_args__ = (
        Index("ix_diagnostic_order_patient", "patient_id"),
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
    status: Mapped[str] = mapped_column(String(16), default="ordered")  # ordered | received | reported
    filler_order_number: Mapped[str | None] = mapped_column(String(64))  # HL7 OBR-3, kept
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


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


class InboundMessage(IdMixin, CreatedMixin, Base):
    """Every HL7 message / DICOM instance received; `quarantined` ones are listed for a person."""

    __tablename__ = "inbound_message"
    __table_args__ = (Index("ix_inbound_message_status", "status", "received_at"),)

    channel: Mapped[str] = mapped_column(String(8))  # hl7 | dicom
    received_at: Mapped[datetime] = mapped_column(default=clock.now)
    status: Mapped[str] = mapped_column(String(16))  # stored | quarantined | rejected | resolved
    reason: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)  # HL7 text
    path: Mapped[str | None] = mapped_column(String(500))  # DICOM file
    control_id: Mapped[str | None] = mapped_column(String(64))  # MSH-10 / SOPInstanceUID
    accession_number: Mapped[str | None] = mapped_column(String(32), index=True)
    sender: Mapped[str | None] = mapped_column(String(100))  # MSH-3/4 or calling AE title
    order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("diagnostic_order.id"))
