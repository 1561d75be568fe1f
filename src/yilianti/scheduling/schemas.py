"""Inputs of the scheduling domain."""

from __future__ import annotations

from datetime import date, time
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class ScheduleIn(BaseModel):
    institution_id: int
    kind: Literal["practitioner", "clinic", "device"]
    name: str = Field(min_length=2, max_length=100)
    practitioner_id: int | None = None
    department_id: int | None = None
    device_type: Literal["CT", "MR", "US", "DR", "ECG"] | None = None
    specialty: str | None = Field(default=None, max_length=64)
    location: str | None = Field(default=None, max_length=200)
    instructions: str | None = Field(default=None, max_length=2000)
    fee_yuan: str | None = Field(default=None, max_length=16)
    reserve_alliance_id: int | None = None
    reserve_share: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _kind_fields(self) -> ScheduleIn:
        if self.kind == "practitioner" and not self.practitioner_id:
            raise ValueError("专家号需要指定医师")
        if self.kind == "device" and not self.device_type:
            raise ValueError("设备号需要指定设备类型")
        return self


class TemplateIn(BaseModel):
    weekday: int = Field(ge=1, le=7)
    start_time: time
    end_time: time
    capacity: int = Field(ge=1, le=500)
    timed: bool = True
    valid_from: date | None = None
    valid_to: date | None = None

    @model_validator(mode="after")
    def _order(self) -> TemplateIn:
        if self.end_time <= self.start_time:
            raise ValueError("结束时间应晚于开始时间")
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("有效期结束日期早于开始日期")
        return self


class BookingIn(BaseModel):
    session_id: int
    patient_id: int
    slot_id: int | None = Field(default=None, description="a particular slot; otherwise the first free one")
    pool: Literal["reserved", "public"] | None = Field(
        default=None, description="default: the reserved pool when eligible, else public")
    note: str | None = Field(default=None, max_length=300)
    referral_id: int | None = None


class WaitRequestIn(BaseModel):
    patient_id: int
    target_institution_id: int
    schedule_id: int | None = None
    specialty: str | None = Field(default=None, max_length=64)
    earliest: date | None = None
    latest: date | None = None
    contact_by_days: int = Field(default=3, ge=0, le=60)
    note: str | None = Field(default=None, max_length=1000)


class WardIn(BaseModel):
    institution_id: int
    department_id: int | None = None
    name: str = Field(min_length=1, max_length=100)
    beds_total: int = Field(ge=0, le=5000)
    occupied: int = Field(default=0, ge=0)
    reserve_alliance_id: int | None = None
    reserve_share: float | None = Field(default=None, ge=0, le=1)


class BedReservationIn(BaseModel):
    ward_id: int
    patient_id: int
    hours: int = Field(default=48, ge=1, le=24 * 14)
    note: str | None = Field(default=None, max_length=300)
    referral_id: int | None = None
