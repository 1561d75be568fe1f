"""Referral input, validated as a referring doctor would check it."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

ICD10 = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")


class Diagnosis(BaseModel):
    icd10: str = Field(max_length=10)
    text: str = Field(min_length=1, max_length=200)

    @field_validator("icd10", mode="before")
    @classmethod
    def _code(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().upper()
            if not ICD10.match(value):
                raise ValueError("ICD-10 编码格式不正确（例如 J18.9）")
        return value


class Summary(BaseModel):
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    key_results: str | None = Field(default=None, max_length=4000)
    medications: list[str] = Field(default_factory=list)
    allergies: list[str] = Field(default_factory=list)


class FollowUpItem(BaseModel):
    due_in_days: int = Field(ge=0, le=730)
    text: str = Field(min_length=1, max_length=300)


class FollowUpPlan(BaseModel):
    items: list[FollowUpItem] = Field(default_factory=list)


class ReferralIn(BaseModel):
    direction: Literal["up", "down"] = "up"
    patient_id: int
    to_institution_id: int
    to_department_id: int | None = None
    to_practitioner_id: int | None = None
    reason: str = Field(min_length=2, max_length=2000)
    priority: Literal["routine", "urgent", "emergency"] = "routine"
    target_service: str | None = Field(default=None, max_length=64)
    permanent: bool = True
    summary: Summary = Field(default_factory=Summary)
    follow_up_plan: FollowUpPlan | None = None
    linked_referral_id: int | None = None

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 2:
            raise ValueError("请填写转诊原因")
        return value
