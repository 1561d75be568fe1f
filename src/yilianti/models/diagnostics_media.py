"""Media of shared diagnostic centres: ECG recordings with their measurements, Orthanc forwarding marks.

An `EcgRecording` keeps the waveform of one 12-lead ECG (from a DICOM 12-lead waveform or a
device's CSV/JSON export) as little-endian int32 samples in µV, lead-interleaved by lead:
`samples` holds lead 0's samples, then lead 1's, ... (`sample_count` per lead). The automatic
measurements are kept apart from the reader's (editable) ones so both can be shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class EcgRecording(IdMixin, CreatedMixin, Base):
    __tablename__ = "ecg_recording"

    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("diagnostic_order.id"), index=True)
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # dicom | csv | json
    imaging_instance_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("imaging_instance.id"))
    filename: Mapped[str | None] = mapped_column(String(255))
    sample_rate: Mapped[float] = mapped_column(Float)  # Hz
    sample_count: Mapped[int] = mapped_column(Integer)  # per lead
    leads: Mapped[list[str]] = mapped_column(JSON)
    samples: Mapped[bytes] = mapped_column(LargeBinary)  # int32 LE µV, lead after lead
    auto: Mapped[dict[str, Any] | None] = mapped_column()  # automatic measurements
    heart_rate: Mapped[int | None] = mapped_column(Integer)  # /min, reader-confirmed
    pr_ms: Mapped[int | None] = mapped_column(Integer)
    qrs_ms: Mapped[int | None] = mapped_column(Integer)
    qt_ms: Mapped[int | None] = mapped_column(Integer)
    qtc_ms: Mapped[int | None] = mapped_column(Integer)
    axis_deg: Mapped[int | None] = mapped_column(Integer)
    rhythm: Mapped[str | None] = mapped_column(String(100))
    conclusion: Mapped[str | None] = mapped_column(Text)
    read_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    read_at: Mapped[datetime | None] = mapped_column()
    uploaded_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))


class OrthancForward(IdMixin, CreatedMixin, Base):
    """One received instance sent on to Orthanc (YILIANTI_ORTHANC_URL): done, or the last error."""

    __tablename__ = "orthanc_forward"

    instance_id: Mapped[int] = mapped_column(BigId, ForeignKey("imaging_instance.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # sent | failed
    orthanc_id: Mapped[str | None] = mapped_column(String(64))  # Orthanc's instance id
    orthanc_study_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
