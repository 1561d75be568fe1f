"""Patients, identifiers, sharing consent, care relationships and access grants (DOMAIN.md §4b)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yilianti.kit.crypto import BIDX_LENGTH, Encrypted, blind_indexed
from yilianti.models.alliance import Alliance, Institution
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class Authority(StrEnum):
    """Assigning authorities of patient identifiers; member record numbers use `MRN:<institution id>`."""

    resident_id = "CN-RIC"  # 居民身份证
    insurance = "CN-MI"  # 医保号
    health_card = "CN-EHC"  # 电子健康卡
    passport = "PASSPORT"


def mrn_authority(institution_id: int) -> str:
    return f"MRN:{institution_id}"


class Patient(IdMixin, CreatedMixin, Base):
    """A person. The phone numbers are stored encrypted; `phone` has a blind index for exact search
    (`Patient.phone == "138..."` compares the index; see kit/crypto.py)."""

    __tablename__ = "patient"

    name: Mapped[str] = mapped_column(String(50), index=True)
    sex: Mapped[str] = mapped_column(String(2))  # 男 | 女 | 未知
    birth_date: Mapped[date | None] = mapped_column(Date, index=True)
    phone_enc: Mapped[str | None] = mapped_column(Encrypted())  # ciphertext in the table, plaintext here
    phone_bidx: Mapped[str | None] = mapped_column(String(BIDX_LENGTH), index=True)
    phone = blind_indexed("phone", "phone_enc", "phone_bidx", "phone")
    # the patient picker's keys (patients/service.search_keys): 拼音首字母 and the phone's last four (HMAC)
    name_initials: Mapped[str | None] = mapped_column(String(16), index=True)
    phone_tail_bidx: Mapped[str | None] = mapped_column(String(BIDX_LENGTH), index=True)
    address: Mapped[str | None] = mapped_column(String(300))
    province: Mapped[str | None] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(String(32))
    county: Mapped[str | None] = mapped_column(String(32))
    guardian_name: Mapped[str | None] = mapped_column(String(50))
    guardian_relation: Mapped[str | None] = mapped_column(String(16))
    guardian_phone: Mapped[str | None] = mapped_column(Encrypted())
    registered_by_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    identifiers: Mapped[list[PatientIdentifier]] = relationship(back_populates="patient", lazy="raise")
    registered_by: Mapped[Institution] = relationship(lazy="raise")


class PatientIdentifier(IdMixin, CreatedMixin, Base):
    """(assigning authority, value) — one value belongs to one patient record.

    The value is stored encrypted with a blind index (`value_bidx`, HMAC of the normalised value):
    `PatientIdentifier.value == x` finds it by exact value; the index leads the unique key so a
    search without an authority uses it too."""

    __tablename__ = "patient_identifier"
    __table_args__ = (UniqueConstraint("value_bidx", "authority"),)

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"), index=True)
    authority: Mapped[str] = mapped_column(String(32))
    value_enc: Mapped[str] = mapped_column(Encrypted())  # ciphertext in the table, plaintext here
    value_bidx: Mapped[str] = mapped_column(String(BIDX_LENGTH))
    value = blind_indexed("value", "value_enc", "value_bidx", "id")
    tail_bidx: Mapped[str | None] = mapped_column(String(BIDX_LENGTH), index=True)  # the picker: last four

    patient: Mapped[Patient] = relationship(back_populates="identifiers", lazy="raise")


class ConsentScope(StrEnum):
    alliance = "alliance"  # members of one alliance
    all = "all"  # every member of every alliance on this platform


class Consent(IdMixin, CreatedMixin, Base):
    """Sharing consent (共享授权): in force from granted_at until withdrawn."""

    __tablename__ = "consent"

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    alliance_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("alliance.id"))
    granted_at: Mapped[datetime] = mapped_column()
    withdrawn_at: Mapped[datetime | None] = mapped_column()
    recorded_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    recorded_at_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    note: Mapped[str | None] = mapped_column(String(300))

    alliance: Mapped[Alliance | None] = relationship(lazy="raise")


class CareKind(StrEnum):
    registered = "registered"
    referral = "referral"
    consultation = "consultation"
    transfer = "transfer"
    diagnostic_order = "diagnostic_order"
    contract = "contract"  # family-doctor contract


class CareRelationship(IdMixin, CreatedMixin, Base):
    """An institution cares for a patient; ends when the referral/order/contract ends."""

    __tablename__ = "care_relationship"
    __table_args__ = (
        Index("ix_care_relationship_lookup", "patient_id", "institution_id"),
        Index("ix_care_relationship_inst", "institution_id", "patient_id"),
    )

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    kind: Mapped[str] = mapped_column(String(32))
    source_type: Mapped[str | None] = mapped_column(String(32))
    source_id: Mapped[int | None] = mapped_column(BigId)
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()


class GrantKind(StrEnum):
    referral = "referral"
    consultation = "consultation"
    break_glass = "break_glass"
    booking = "booking"  # the site holding a booked session sees the patient it will receive
    joint_ward = "joint_ward"  # the lead-hospital team of a joint ward (联合病房) sees its admitted patients
    manual = "manual"


class AccessGrant(IdMixin, CreatedMixin, Base):
    """Explicit, expiring, audited access to one patient for an institution (or one user in it)."""

    __tablename__ = "access_grant"
    __table_args__ = (Index("ix_access_grant_lookup", "patient_id", "institution_id"),)

    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    includes_shared: Mapped[bool] = mapped_column(Boolean, default=True)
    source_type: Mapped[str | None] = mapped_column(String(32))
    source_id: Mapped[int | None] = mapped_column(BigId)
    granted_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    starts_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    # break-glass review
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewed_at: Mapped[datetime | None] = mapped_column()
    reviewed_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    review_outcome: Mapped[str | None] = mapped_column(String(300))
