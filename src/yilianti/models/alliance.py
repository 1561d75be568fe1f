"""Alliances (医联体), institutions, memberships and departments."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class AllianceModel(StrEnum):
    urban_group = "urban_group"  # 城市医疗集团
    county_community = "county_community"  # 县域医共体
    specialty_alliance = "specialty_alliance"  # 跨区域专科联盟
    telemedicine_net = "telemedicine_net"  # 远程医疗协作网
    trusteeship = "trusteeship"  # 托管
    regional_center = "regional_center"  # 国家/省级区域医疗中心


class MemberRole(StrEnum):
    lead = "lead"  # 牵头/核心
    member = "member"  # 成员
    platform = "platform"  # 平台医院
    collaborating = "collaborating"  # 协作
    guided = "guided"  # 指导
    partner = "partner"  # 合作


class InstitutionKind(StrEnum):
    general = "general"
    specialty = "specialty"
    maternal_child = "maternal_child"
    community_center = "community_center"
    community_station = "community_station"
    township = "township"
    village = "village"
    emergency = "emergency"
    private = "private"
    health_authority = "health_authority"  # 卫生健康委员会: supervises the alliances of its region, treats no one


GRASSROOTS_KINDS = frozenset(
    {InstitutionKind.community_center, InstitutionKind.community_station, InstitutionKind.township,
     InstitutionKind.village}
)


class Alliance(IdMixin, CreatedMixin, Base):
    __tablename__ = "alliance"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(32))
    specialty: Mapped[str | None] = mapped_column(String(64))
    tight: Mapped[bool] = mapped_column(Boolean, default=False)
    cross_province: Mapped[bool] = mapped_column(Boolean, default=False)
    founded: Mapped[str | None] = mapped_column(String(16))  # "2013-05" as reported
    notes: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # reserved pools (DOMAIN.md §3): share of the lead's slots/beds kept for members below it
    slot_reserve_share: Mapped[float] = mapped_column(Numeric(5, 4, asdecimal=False), default=0.3333)  # one third (reserved_count reads it as 1/3)
    bed_reserve_share: Mapped[float] = mapped_column(Numeric(5, 4, asdecimal=False), default=0.25)
    reserve_for: Mapped[str] = mapped_column(String(16), default="grassroots")  # grassroots | members
    reserve_cutoff_hours: Mapped[int] = mapped_column(default=24)

    memberships: Mapped[list[Membership]] = relationship(back_populates="alliance", lazy="raise")


class Institution(IdMixin, CreatedMixin, Base):
    __tablename__ = "institution"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    short_name: Mapped[str | None] = mapped_column(String(100))
    code: Mapped[str | None] = mapped_column(String(64), unique=True)  # 医疗机构登记号, when known
    level: Mapped[int | None] = mapped_column()  # 3 三级 / 2 二级 / 1 一级; None = not reported
    kind: Mapped[str] = mapped_column(String(32))
    province: Mapped[str] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(String(32))
    county: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    memberships: Mapped[list[Membership]] = relationship(back_populates="institution", lazy="raise")
    departments: Mapped[list[Department]] = relationship(back_populates="institution", lazy="raise")

    @property
    def is_grassroots(self) -> bool:
        return self.kind in GRASSROOTS_KINDS

    @property
    def display_name(self) -> str:
        return self.short_name or self.name


class Membership(IdMixin, CreatedMixin, Base):
    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("alliance_id", "institution_id", "role", "joined_on"),)

    alliance_id: Mapped[int] = mapped_column(BigId, ForeignKey("alliance.id"), index=True)
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    joined_on: Mapped[date | None] = mapped_column(Date)
    left_on: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)

    alliance: Mapped[Alliance] = relationship(back_populates="memberships", lazy="raise")
    institution: Mapped[Institution] = relationship(back_populates="memberships", lazy="raise")

    def is_current(self, on: date) -> bool:
        """In force on `on`; the SQL twin is `alliance.repository.current_on`."""
        return (self.joined_on is None or self.joined_on <= on) and (self.left_on is None or on < self.left_on)


class Department(IdMixin, CreatedMixin, Base):
    __tablename__ = "department"
    __table_args__ = (UniqueConstraint("institution_id", "name"),)

    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    specialty: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    institution: Mapped[Institution] = relationship(back_populates="departments", lazy="raise")
