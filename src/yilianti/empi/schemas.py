"""Request and response models of the empi API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class RecordOut(BaseModel):
    record_id: int
    patient_id: int
    institution_id: int
    institution: str
    name: str
    sex: str | None
    birth_date: date | None
    phone: str | None  # masked
    address: str | None
    resident_id: str | None  # masked
    registered_at: datetime


class CandidateOut(BaseModel):
    id: int
    status: str
    score: float
    rules_version: str
    explanation: dict[str, float]
    created_at: datetime
    decided_at: datetime | None
    decision_note: str | None
    merge_event_id: int | None
    record: RecordOut
    other: RecordOut


class DecisionIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)


class UnmergeIn(BaseModel):
    reason: str = Field(min_length=2, max_length=500)


class MergeOut(BaseModel):
    id: int
    kind: str
    survivor_id: int
    merged_id: int
    at: datetime
    undone_at: datetime | None
    reason: str | None
    moved: dict[str, int]
