"""Request and response models of the diagnostics API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from yilianti.kit.schemas import Id
from yilianti.models.diagnostics import DiagnosticOrder, DiagnosticReport


class ReadingIn(BaseModel):
    heart_rate: int | None = Field(None, ge=0, le=400, description="/min")
    pr_ms: int | None = Field(None, ge=0, le=2000)
    qrs_ms: int | None = Field(None, ge=0, le=2000)
    qt_ms: int | None = Field(None, ge=0, le=2000)
    qtc_ms: int | None = Field(None, ge=0, le=2000)
    axis_deg: int | None = Field(None, ge=-180, le=360, description="degrees")
    rhythm: str | None = Field(None, max_length=100)
    conclusion: str | None = Field(None, max_length=4000)


class ItemOut(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    modality: str | None
    loinc_code: str | None
    local_code: str | None
    reading_centre_institution_id: int
    reading_centre_name: str
    expected_tat_minutes: int
    price_fen: int | None = Field(description="price at the caller's institution fee standard, in fen")
    fee_standard: str | None


class OrderIn(BaseModel):
    patient_id: Id
    item_id: Id
    priority: Literal["routine", "urgent", "stat"] = "routine"
    clinical_question: str | None = Field(default=None, max_length=2000)


class OrderOut(BaseModel):
    id: int
    accession_number: str
    patient_id: int
    item_id: int | None
    item_code: str
    item_name: str
    kind: str
    modality: str | None
    priority: str
    status: str
    ordering_institution_id: int
    reading_centre_institution_id: int | None
    performing_institution_id: int | None
    ordered_at: datetime | None
    received_at: datetime | None
    claimed_by_user_id: int | None
    claimed_at: datetime | None
    due_at: datetime | None
    reported_at: datetime | None
    tat_minutes: int | None
    price_fen: int | None

    @classmethod
    def of(cls, o: DiagnosticOrder) -> OrderOut:
        return cls.model_validate(o, from_attributes=True)


class WorklistRow(BaseModel):
    order: OrderOut
    patient_name: str
    ordering_institution_name: str
    waiting_minutes: int
    overdue: bool
    claimed_by: str | None


class ReportIn(BaseModel):
    findings: str | None = Field(default=None, max_length=20000)
    conclusion: str | None = Field(default=None, max_length=5000)
    measurements: dict[str, Any] | None = None
    critical: bool = False
    sign: bool = Field(default=False, description="sign now (final, or preliminary for a trainee)")


class ReportOut(BaseModel):
    id: int
    order_id: int
    status: str
    findings: str | None
    conclusion: str | None
    measurements: dict[str, Any] | None
    critical: bool
    signed_by_user_id: int | None
    signed_by_practitioner_id: int | None
    signed_at: datetime | None
    second_signer_user_id: int | None
    second_signed_at: datetime | None
    version: int

    @classmethod
    def of(cls, r: DiagnosticReport) -> ReportOut:
        return cls.model_validate(r, from_attributes=True)


class OrderDetail(BaseModel):
    order: OrderOut
    report: ReportOut | None
    history: list[dict[str, Any]]


class MoveIn(BaseModel):
    to_status: Literal["acquired", "transmitted", "received", "cancelled"]
    expected_status: str | None = None
    reason: str | None = None


class AssignIn(BaseModel):
    reader_user_id: Id
