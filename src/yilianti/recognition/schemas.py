"""Request and response models of the recognition API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from yilianti.kit.schemas import Id
from yilianti.recognition import service


class ObservationOut(BaseModel):
    code: str
    name: str | None
    value: str | None
    units: str | None
    reference_range: str | None
    abnormal_flags: str | None


class ResultOut(BaseModel):
    order_id: int
    accession_number: str
    item_code: str
    item_name: str
    source_institution_id: int
    source_institution: str
    result_date: date
    valid_until: date
    days_left: int
    hr_mark: str
    scopes: list[str]
    own_institution: bool
    imported_from_member_system: bool
    observations: list[ObservationOut]


class LookupOut(BaseModel):
    patient_id: int
    item_code: str
    item_name: str
    kind: str
    in_scope: bool
    scopes: list[str]
    consent_missing: bool
    message: str
    results: list[ResultOut]
    retest_reasons: dict[str, str]


class DecisionBody(BaseModel):
    patient_id: Id
    item_code: str = Field(min_length=1, max_length=64)
    decision: Literal["reuse", "retest"]
    reused_order_id: Id | None = None
    reason_code: str | None = Field(default=None, description=", ".join(service.RETEST_REASONS))
    reason_text: str | None = Field(default=None, max_length=2000)
    patient_informed: bool = False
    order_id: Id | None = Field(default=None, description="the platform order being placed, if any")
    referral_id: Id | None = None
    department_id: Id | None = None


class DecisionOut(BaseModel):
    id: int
    patient_id: int
    item_code: str
    decision: str
    satisfied_by_recognition: bool
    reused_order_id: int | None
    reused_institution_id: int | None
    reused_result_date: date | None
    reason_code: str | None
    reason: str | None
    reason_text: str | None
    patient_informed: bool
    order_id: int | None
    referral_id: int | None
    institution_id: int
    department_id: int | None
    user_id: int | None
    decided_at: datetime
    price_saved_fen: int


class ImportedOut(BaseModel):
    order_id: int
    accession_number: str
    item_code: str
    hr_mark: str


class MarkOut(BaseModel):
    order_id: int
    marked: bool
    hr_mark: str
    scopes: list[str]


class ItemOut(BaseModel):
    code: str
    name: str
    kind: str
    loinc: str | None
    price_fen: int | None
    rules: dict[str, int]


class RuleIn(BaseModel):
    item_code: str = Field(min_length=1, max_length=64)
    scope_code: str = Field(min_length=1, max_length=32)
    valid_days: int = Field(json_schema_extra={"minimum": 1, "maximum": service.VALID_DAYS_MAX},
                            description=f"1–{service.VALID_DAYS_MAX} days")


class ItemBody(BaseModel):
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(description="lab | imaging")
    loinc: str | None = None
    codes: list[str] | None = Field(default=None, description="other codes that mean the item; omitted = unchanged")
    price_yuan: str | None = Field(default=None, description="reference price in yuan, e.g. \"120.00\"")
    active: bool = True


class QualificationBody(BaseModel):
    item_code: str = Field(max_length=64)
    scope_code: str = Field(max_length=32)
    institution_id: Id | None = None
    qc_from: str | None = Field(default=None, description="YYYY-MM-DD")
    qc_to: str | None = Field(default=None, description="YYYY-MM-DD, not before qc_from")
    qc_body: str | None = None


class QualificationOut(BaseModel):
    id: int
    item_code: str
    scope_code: str
    institution_id: int
    qc_from: date
    qc_to: date
    qc_body: str | None
