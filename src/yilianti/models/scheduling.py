"""Schedules, dated sessions, one row per slot, bookings, the wait-list, wards and bed reservations.

One row per slot (not a counter): booking claims a free row with a conditional UPDATE
(`FOR UPDATE SKIP LOCKED` when any slot will do), and the booking row is inserted only
when that UPDATE returned a row. Partial unique indexes make a second active booking of
the same slot, or of the same patient in the same session, impossible at the database.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yilianti.models.alliance import Department, Institution
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin
from yilianti.models.workforce import Practitioner


class ResourceKind(StrEnum):
    practitioner = "practitioner"  # 专家号
    clinic = "clinic"  # 科室普通号
    device = "device"  # CT / MR / 超声 / 心电


class Pool(StrEnum):
    reserved = "reserved"  # 预留给医联体下级成员的号源
    public = "public"


class SessionStatus(StrEnum):
    open = "open"
    cancelled = "cancelled"


class BookingStatus(StrEnum):
    booked = "booked"
    arrived = "arrived"
    no_show = "no_show"
    cancelled = "cancelled"


ACTIVE_BOOKING = ("booked", "arrived")


class Schedule(IdMixin, CreatedMixin, Base):
    """A bookable resource at a member site: an expert, a clinic, or a device."""

    __tablename__ = "schedule"

    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)  # where held
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    department_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("department.id"))
    device_type: Mapped[str | None] = mapped_column(String(16))  # CT | MR | US | DR | ECG
    specialty: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(200))
    instructions: Mapped[str | None] = mapped_column(Text)
    fee_yuan: Mapped[str | None] = mapped_column(String(16))
    # reserved pool: which alliance's lower members get the share; None = no reserve
    reserve_alliance_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("alliance.id"))
    reserve_share: Mapped[float | None] = mapped_column()  # None = the alliance's setting
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    institution: Mapped[Institution] = relationship(lazy="raise")
    practitioner: Mapped[Practitioner | None] = relationship(lazy="raise")
    department: Mapped[Department | None] = relationship(lazy="raise")
    templates: Mapped[list[ScheduleTemplate]] = relationship(back_populates="schedule", lazy="raise")


class ScheduleTemplate(IdMixin, CreatedMixin, Base):
    """Weekly template: e.g. every Wednesday 08:00–11:30, 14 slots of 15 minutes."""

    __tablename__ = "schedule_template"
    __table_args__ = (CheckConstraint("capacity > 0", name="capacity_positive"),
                      CheckConstraint("weekday BETWEEN 1 AND 7", name="weekday_range"))

    schedule_id: Mapped[int] = mapped_column(BigId, ForeignKey("schedule.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # 1 = Monday
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    capacity: Mapped[int] = mapped_column()
    timed: Mapped[bool] = mapped_column(Boolean, default=True)  # timed slots, or by count (按序号)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)

    schedule: Mapped[Schedule] = relationship(back_populates="templates", lazy="raise")


class Closure(IdMixin, CreatedMixin, Base):
    """Holiday or ad-hoc closure: no sessions are generated on that day."""

    __tablename__ = "closure"

    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    schedule_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("schedule.id"))  # None = whole site
    day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200))


class ClinicSession(IdMixin, CreatedMixin, Base):
    __tablename__ = "clinic_session"
    __table_args__ = (UniqueConstraint("schedule_id", "starts_at"),
                      Index("ix_clinic_session_day", "day", "schedule_id"))

    schedule_id: Mapped[int] = mapped_column(BigId, ForeignKey("schedule.id"))
    template_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("schedule_template.id"))
    day: Mapped[date] = mapped_column(Date)  # local (Asia/Shanghai) date
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    capacity: Mapped[int] = mapped_column()
    reserved_capacity: Mapped[int] = mapped_column(default=0)  # ceil(capacity × share) at creation
    reserve_alliance_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("alliance.id"))
    reserve_cutoff_at: Mapped[datetime | None] = mapped_column()
    reserve_released_at: Mapped[datetime | None] = mapped_column()
    reserve_released_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.open)
    cancelled_reason: Mapped[str | None] = mapped_column(String(200))

    schedule: Mapped[Schedule] = relationship(lazy="raise")


class Slot(IdMixin, Base):
    __tablename__ = "slot"
    __table_args__ = (UniqueConstraint("session_id", "seq"),
                      # the next free seat of a pool is the first entry of this partial index
                      Index("ix_slot_free", "session_id", "pool", "seq",
                            postgresql_where=text("NOT booked"), sqlite_where=text("NOT booked")))

    session_id: Mapped[int] = mapped_column(BigId, ForeignKey("clinic_session.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column()  # 就诊序号
    starts_at: Mapped[datetime | None] = mapped_column()
    pool: Mapped[str] = mapped_column(String(16))
    reserved_origin: Mapped[bool] = mapped_column(Boolean, default=False)  # was in the reserve at creation
    booked: Mapped[bool] = mapped_column(Boolean, default=False)


class Booking(IdMixin, CreatedMixin, Base):
    __tablename__ = "booking"
    __table_args__ = (
        Index("uq_booking_active_slot", "slot_id", unique=True,
              postgresql_where=text("status IN ('booked','arrived')"),
              sqlite_where=text("status IN ('booked','arrived')")),
        Index("uq_booking_active_patient_session", "session_id", "patient_id", unique=True,
              postgresql_where=text("status IN ('booked','arrived')"),
              sqlite_where=text("status IN ('booked','arrived')")),
        Index("ix_booking_inst", "booked_by_institution_id", "created_at"),
        Index("ix_booking_patient", "patient_id"),
    )

    number: Mapped[str] = mapped_column(String(32), unique=True)
    session_id: Mapped[int] = mapped_column(BigId, ForeignKey("clinic_session.id"))
    slot_id: Mapped[int] = mapped_column(BigId, ForeignKey("slot.id"))
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    pool: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=BookingStatus.booked)
    booked_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    booked_by_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    note: Mapped[str | None] = mapped_column(String(300))
    referral_id: Mapped[int | None] = mapped_column(BigId)
    rescheduled_from_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("booking.id"))
    cancelled_at: Mapped[datetime | None] = mapped_column()
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    arrived_at: Mapped[datetime | None] = mapped_column()
    no_show_at: Mapped[datetime | None] = mapped_column()


class BookingRequest(IdMixin, CreatedMixin, Base):
    """No slot fits: the request waits on a worklist with a contact-by deadline."""

    __tablename__ = "booking_request"
    __table_args__ = (Index("ix_booking_request_status", "status", "contact_by"),)

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    requested_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    requested_by_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    target_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    schedule_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("schedule.id"))
    specialty: Mapped[str | None] = mapped_column(String(64))
    earliest: Mapped[date | None] = mapped_column(Date)
    latest: Mapped[date | None] = mapped_column(Date)
    contact_by: Mapped[datetime] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="waiting")  # waiting | booked | closed
    booking_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("booking.id"))
    closed_reason: Mapped[str | None] = mapped_column(String(200))
    handled_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))


class Ward(IdMixin, CreatedMixin, Base):
    """A ward's beds with a share reserved for referrals from members (default ≥ 1/4)."""

    __tablename__ = "ward"
    __table_args__ = (UniqueConstraint("institution_id", "name"),
                      CheckConstraint("beds_total >= 0", name="beds_nonneg"),
                      CheckConstraint("reserved_held <= reserved_beds", name="reserve_not_exceeded"),
                      CheckConstraint("occupied + reserved_held + public_held <= beds_total", name="no_overfill"))

    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("department.id"))
    name: Mapped[str] = mapped_column(String(100))
    beds_total: Mapped[int] = mapped_column()
    reserved_beds: Mapped[int] = mapped_column(default=0)  # ceil(beds_total × share)
    reserve_alliance_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("alliance.id"))
    occupied: Mapped[int] = mapped_column(default=0)  # occupied by patients admitted outside the platform
    reserved_held: Mapped[int] = mapped_column(default=0)  # reservations holding reserved beds
    public_held: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class BedReservation(IdMixin, CreatedMixin, Base):
    __tablename__ = "bed_reservation"
    __table_args__ = (Index("ix_bed_reservation_ward", "ward_id", "status"),)

    ward_id: Mapped[int] = mapped_column(BigId, ForeignKey("ward.id"))
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    pool: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="held")  # held | admitted | released | expired
    requested_by_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    requested_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    expires_at: Mapped[datetime] = mapped_column()
    referral_id: Mapped[int | None] = mapped_column(BigId)
    note: Mapped[str | None] = mapped_column(String(300))
    ended_at: Mapped[datetime | None] = mapped_column()
