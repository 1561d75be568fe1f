"""Request and response models of the scheduling domain (and the rows → BookingOut mapping)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from yilianti.kit import clock
from yilianti.kit.schemas import Day, Id, LocalTime
from yilianti.models.scheduling import Booking, ClinicSession, Slot


class ScheduleIn(BaseModel):
    institution_id: Id
    kind: Literal["practitioner", "clinic", "device"]
    name: str = Field(min_length=2, max_length=100)
    practitioner_id: Id | None = None
    department_id: Id | None = None
    device_type: Literal["CT", "MR", "US", "DR", "ECG"] | None = None
    specialty: str | None = Field(default=None, max_length=64)
    location: str | None = Field(default=None, max_length=200)
    instructions: str | None = Field(default=None, max_length=2000)
    fee_yuan: str | None = Field(default=None, max_length=16)
    reserve_alliance_id: Id | None = None
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
    start_time: LocalTime
    end_time: LocalTime
    capacity: int = Field(ge=1, le=500)
    timed: bool = True
    valid_from: Day | None = None
    valid_to: Day | None = None

    @model_validator(mode="after")
    def _order(self) -> TemplateIn:
        if self.end_time <= self.start_time:
            raise ValueError("结束时间应晚于开始时间")
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("有效期结束日期早于开始日期")
        return self


class BookingIn(BaseModel):
    session_id: Id
    patient_id: Id
    slot_id: Id | None = Field(default=None, description="a particular slot; otherwise the first free one")
    pool: Literal["reserved", "public"] | None = Field(
        default=None, description="default: the reserved pool when eligible, else public")
    note: str | None = Field(default=None, max_length=300)
    referral_id: Id | None = None


class WaitRequestIn(BaseModel):
    patient_id: Id
    target_institution_id: Id
    schedule_id: Id | None = None
    specialty: str | None = Field(default=None, max_length=64)
    earliest: Day | None = None
    latest: Day | None = None
    contact_by_days: int = Field(default=3, ge=0, le=60)
    note: str | None = Field(default=None, max_length=1000)


class WardIn(BaseModel):
    institution_id: Id
    department_id: Id | None = None
    name: str = Field(min_length=1, max_length=100)
    beds_total: int = Field(ge=0, le=5000)
    occupied: int = Field(default=0, ge=0, le=5000)
    reserve_alliance_id: Id | None = None
    reserve_share: float | None = Field(default=None, ge=0, le=1)


class BedReservationIn(BaseModel):
    ward_id: Id
    patient_id: Id
    hours: int = Field(default=48, ge=1, le=24 * 14)
    note: str | None = Field(default=None, max_length=300)
    referral_id: Id | None = None


class SessionOut(BaseModel):
    id: int
    schedule_id: int
    schedule_name: str
    kind: str
    institution_id: int
    institution_name: str
    practitioner_name: str | None
    practitioner_title: str | None
    department: str | None
    specialty: str | None
    location: str | None
    day: date
    starts_at: datetime
    ends_at: datetime
    status: str
    capacity: int
    reserved_capacity: int
    free_reserved: int
    free_public: int
    reserve_cutoff_at: datetime | None
    reserve_released_at: datetime | None
    reserve_released_count: int


class AvailabilityOut(BaseModel):
    session_id: int
    status: str
    bookable: bool = Field(description="open and not yet started")
    capacity: int
    reserved_capacity: int
    free_reserved: int
    free_public: int
    booked: int
    pools: list[str] = Field(description="pools the acting institution may book from")
    reason: str | None = Field(description="why it may not book, when pools is empty")
    reserve_cutoff_at: datetime | None
    reserve_released_at: datetime | None
    reserve_released_count: int


class SlotOut(BaseModel):
    id: int
    seq: int
    starts_at: datetime | None
    pool: str


class BookingOut(BaseModel):
    id: int
    number: str
    status: str
    session_id: int
    slot_id: int
    seq: int
    slot_starts_at: datetime | None
    session_starts_at: datetime
    pool: str
    patient_id: int
    site_institution_id: int
    booked_by_institution_id: int
    note: str | None
    rescheduled_from_id: int | None
    created_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str | None
    arrived_at: datetime | None
    no_show_at: datetime | None


class CancelIn(BaseModel):
    reason: str = Field(default="", max_length=200)


class ArriveIn(BaseModel):
    """An arrival; before the booked day only with the reason (scheduling.rules.arrival_reason)."""

    arrival_reason: str = Field(default="", max_length=200)


class RescheduleIn(BaseModel):
    session_id: Id
    slot_id: Id | None = None


class BookingRequestOut(BaseModel):
    id: int
    patient_id: int
    requested_by_institution_id: int
    target_institution_id: int
    schedule_id: int | None
    specialty: str | None
    earliest: date | None
    latest: date | None
    contact_by: datetime
    overdue: bool
    note: str | None
    status: str
    booking_id: int | None
    closed_reason: str | None


class ScheduleOut(BaseModel):
    id: int
    institution_id: int
    kind: str
    name: str
    practitioner_id: int | None
    department_id: int | None
    device_type: str | None
    specialty: str | None
    location: str | None
    instructions: str | None
    fee_yuan: str | None
    reserve_alliance_id: int | None
    reserve_share: float | None


class TemplateOut(BaseModel):
    id: int
    schedule_id: int
    weekday: int
    start_time: time
    end_time: time
    capacity: int
    timed: bool
    valid_from: date | None
    valid_to: date | None


class GenerateIn(BaseModel):
    start: Day
    end: Day


class GeneratedOut(BaseModel):
    created: int


class SessionCancelledOut(BaseModel):
    session_id: int
    bookings_cancelled: int


class WardOut(BaseModel):
    id: int
    institution_id: int
    department_id: int | None
    name: str
    beds_total: int
    occupied: int
    reserved_beds: int
    reserved_held: int
    public_held: int
    free_reserved: int
    free_public: int
    reserve_alliance_id: int | None


class BedReservationOut(BaseModel):
    id: int
    ward_id: int
    patient_id: int
    pool: str
    status: str
    requested_by_institution_id: int
    expires_at: datetime
    ended_at: datetime | None
    note: str | None


class MonthOut(BaseModel):
    month: str = Field(description="YYYY-MM of the session day")
    offered: int
    reserved: int
    sinking_ratio: float | None = Field(description="reserved ÷ offered")
    reserved_booked: int
    reserve_use: float | None = Field(description="reserved slots booked ÷ reserved")
    member_booked: int


def utc_or_none(value: datetime | None) -> datetime | None:
    return clock.as_utc(value) if value else None


# BookingOut's fields from the rows (the route and the booking fast path's fallback answer alike)
def booking_out(b: Booking, session: ClinicSession, slot: Slot, site_id: int) -> dict[str, Any]:
    return {"id": b.id, "number": b.number, "status": b.status, "session_id": b.session_id, "slot_id": b.slot_id,
            "seq": slot.seq, "slot_starts_at": utc_or_none(slot.starts_at), "session_starts_at": utc_or_none(session.starts_at),
            "pool": b.pool, "patient_id": b.patient_id, "site_institution_id": site_id,
            "booked_by_institution_id": b.booked_by_institution_id, "note": b.note,
            "rescheduled_from_id": b.rescheduled_from_id, "created_at": utc_or_none(b.created_at),
            "cancelled_at": utc_or_none(b.cancelled_at), "cancel_reason": b.cancel_reason,
            "arrived_at": utc_or_none(b.arrived_at), "no_show_at": utc_or_none(b.no_show_at)}
