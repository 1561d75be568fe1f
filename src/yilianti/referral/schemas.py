"""Referral input, validated as a referring doctor would check it."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from yilianti.kit.schemas import HistoryOut, Id
from yilianti.referral.states import Status

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
    patient_id: Id
    to_institution_id: Id
    to_department_id: Id | None = None
    to_practitioner_id: Id | None = None
    reason: str = Field(min_length=2, max_length=2000)
    priority: Literal["routine", "urgent", "emergency"] = "routine"
    target_service: str | None = Field(default=None, max_length=64)
    permanent: bool = True
    summary: Summary = Field(default_factory=Summary)
    follow_up_plan: FollowUpPlan | None = None
    linked_referral_id: Id | None = None

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 2:
            raise ValueError("请填写转诊原因")
        return value


class ReferralOut(BaseModel):
    id: int
    direction: str
    linked_referral_id: int | None
    patient_id: int
    from_institution_id: int
    to_institution_id: int
    to_department_id: int | None
    to_practitioner_id: int | None
    reason: str
    priority: str
    target_service: str | None
    permanent: bool
    summary: dict[str, Any]
    follow_up_plan: dict[str, Any] | None
    status: str
    due_at: datetime | None
    booking_id: int | None
    bed_reservation_id: int | None
    reject_code: str | None
    reject_comment: str | None
    outcome_note: str | None
    forwarded_to_id: int | None
    submitted_at: datetime | None
    created_at: datetime


class ReferralDetail(ReferralOut):
    side: str
    next_moves: list[str]
    history: list[HistoryOut]


class TransitionIn(BaseModel):
    to_status: Status
    expected_status: Status = Field(description="The status the client last saw; a different current status → 409")
    reason: str | None = Field(default=None, max_length=2000,
                               description="note / advice / outcome / cancel or forward reason, or why a patient "
                                           "arrives before the booked day (required then), by move")
    reject_code: str | None = None
    booking_id: Id | None = None
    bed_reservation_id: Id | None = None
    to_institution_id: Id | None = Field(default=None, description="forward: the next institution")
    arrival_mode: str | None = Field(default=None, description="arrived without a slot (an accepted down-referral): "
                                     "walk_in | home_visit")


class TaskOut(BaseModel):
    id: int
    referral_id: int
    patient_id: int
    institution_id: int
    due_on: date
    text: str
    status: str
    done_at: datetime | None


class SessionOptionOut(BaseModel):
    session_id: int
    institution_id: int
    schedule_name: str
    department: str | None
    specialty: str | None
    starts_at: datetime
    ends_at: datetime
    free_reserved: int = Field(description="free slots of the reserve the referral's origin may use")
    free_public: int


class WardOptionOut(BaseModel):
    ward_id: int
    institution_id: int
    name: str
    department: str | None
    free_reserved: int = Field(description="free reserved beds the referral's origin may use")
    free_public: int


class CandidateOut(BaseModel):
    institution_id: int
    name: str
    level: int | None
    kind: str
    same_area: str | None
    free_reserved_slots: int
    free_reserved_beds: int
    sessions: list[SessionOptionOut]
    wards: list[WardOptionOut]


class RoutingOut(BaseModel):
    specialty: str | None
    days: int
    candidates: list[CandidateOut]
    # for a referral: what can be booked at its receiving institution now
    sessions: list[SessionOptionOut] = []
    wards: list[WardOptionOut] = []


class BookSlotIn(BaseModel):
    session_id: Id
    slot_id: Id | None = Field(default=None, description="a particular slot; otherwise the first free one")
    pool: Literal["reserved", "public"] | None = Field(
        default=None, description="default: the reserve for the referral's origin when it may use it, else public")
    expected_status: Status = Field(default=Status.accepted, description="the status the client last saw")


class ReserveBedIn(BaseModel):
    ward_id: Id
    hours: int = Field(default=48, ge=1, le=24 * 14)
    expected_status: Status = Status.accepted


class AttachmentOut(BaseModel):
    id: int
    filename: str
    kind: str
    content_type: str
    size_bytes: int
    sha256: str
    institution_id: int | None
    uploaded_by_user_id: int | None
    created_at: datetime
