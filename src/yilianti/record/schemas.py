"""Request and response models of the record API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class EntryOut(BaseModel):
    kind: str
    at: datetime
    source_institution_id: int
    source_institution: str
    title: str
    detail: str
    status: str | None
    ref: str
    link: str | None
    hr_mark: str = Field("", description='mutual-recognition mark of a result, e.g. "HR 京津冀" ("" when none)')


class RecordOut(BaseModel):
    patient_id: int
    access_basis: str
    shared_record_visible: bool
    kinds: list[str]
    hidden_other_members: int
    entries: list[EntryOut]


class AccessLogOut(BaseModel):
    at: datetime
    institution_id: int | None
    institution: str
    user: str
    action: str
    resource_type: str
    basis: str | None
    reason: str | None
    channel: str | None
