"""Consultation input, validated as a requesting doctor and an expert would check it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from yilianti.kit.schemas import HistoryOut, Id, Instant


def _text(value: str, message: str) -> str:
    value = (value or "").strip()
    if len(value) < 2:
        raise ValueError(message)
    return value


class ConsultationIn(BaseModel):
    patient_id: Id
    consulted_institution_id: Id
    kind: Literal["econsult", "mdt", "cloud"] = "econsult"
    department_id: Id | None = None
    specialty: str | None = Field(default=None, max_length=64)
    expert_practitioner_ids: list[Id] = Field(default_factory=list, max_length=12,
                                               description="named experts; empty = the department/specialty pool")
    question: str = Field(max_length=4000)
    clinical_summary: str | None = Field(default=None, max_length=8000)
    urgency: Literal["routine", "urgent", "emergency"] = "routine"
    consent_confirmed: bool = Field(default=False, description="the patient (or guardian) agreed to the consultation")
    consent_note: str | None = Field(default=None, max_length=200)
    scheduled_at: Instant | None = Field(default=None, description="MDT session time")
    video_url: str | None = Field(default=None, max_length=500)
    order_ids: list[Id] = Field(default_factory=list, max_length=30,
                                 description="diagnostic orders (results, images, ECG) of the same patient")

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        return _text(value, "请填写会诊问题")

    @field_validator("video_url")
    @classmethod
    def _video(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("视频链接应以 http:// 或 https:// 开头")
        return value


class AssignIn(BaseModel):
    practitioner_ids: list[Id] = Field(min_length=1, max_length=12)
    lead_practitioner_id: Id | None = None


class OpinionIn(BaseModel):
    outcome: Literal["advice", "more_info", "recommend_referral"]
    text: str = Field(max_length=8000)

    @field_validator("text")
    @classmethod
    def _body(cls, value: str) -> str:
        return _text(value, "请填写会诊意见")


class MessageIn(BaseModel):
    body: str = Field(max_length=4000)

    @field_validator("body")
    @classmethod
    def _body(cls, value: str) -> str:
        value = (value or "").strip()
        if not value:
            raise ValueError("消息不能为空")
        return value


class CloseOutIn(BaseModel):
    rating: int = Field(ge=1, le=5)
    action_taken: str = Field(max_length=4000)
    avoided_referral: bool

    @field_validator("action_taken")
    @classmethod
    def _action(cls, value: str) -> str:
        return _text(value, "请填写根据会诊意见采取的处理")


class ConvertIn(BaseModel):
    reason: str | None = Field(default=None, max_length=2000, description="defaults to the question and the opinion")
    target_service: str | None = Field(default="门诊", max_length=64)


class LinkOrderIn(BaseModel):
    order_id: Id


class ParticipantOut(BaseModel):
    practitioner_id: int
    user_id: int | None
    role: str
    acknowledged_at: datetime | None


class OpinionOut(BaseModel):
    id: int
    practitioner_id: int
    outcome: str
    text: str
    signed_at: datetime
    signature: str


class MessageOut(BaseModel):
    id: int
    at: datetime
    user_id: int | None
    institution_id: int | None
    body: str


class OrderLinkOut(BaseModel):
    order_id: int
    accession_number: str
    kind: str
    item_name: str
    status: str
    purpose: str


class ConsultationOut(BaseModel):
    id: int
    case_no: str | None
    kind: str
    patient_id: int
    requesting_institution_id: int
    consulted_institution_id: int
    department_id: int | None
    specialty: str | None
    question: str
    clinical_summary: str | None
    urgency: str
    consent_confirmed: bool
    scheduled_at: datetime | None
    status: str
    due_at: datetime | None
    answer_due_at: datetime | None
    first_answered_at: datetime | None
    outcome: str | None
    referral_id: int | None
    rating: int | None
    action_taken: str | None
    avoided_referral: bool | None
    created_at: datetime


class ConsultationDetail(ConsultationOut):
    side: str
    next_moves: list[str]
    video_link: str | None
    participants: list[ParticipantOut]
    opinions: list[OpinionOut]
    messages: list[MessageOut]
    orders: list[OrderLinkOut]
    history: list[HistoryOut]


class TransitionIn(BaseModel):
    expected_status: str | None = Field(default=None, description="the status the client last saw; else 409")
    reason: str | None = Field(default=None, max_length=2000)
