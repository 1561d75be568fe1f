"""Practitioners and multi-site practice (多点执业)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yilianti.models.alliance import Department, Institution
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class Title(StrEnum):
    chief = "主任医师"
    associate_chief = "副主任医师"
    attending = "主治医师"
    resident = "住院医师"
    assistant = "医士"
    chief_technician = "主任技师"
    associate_chief_technician = "副主任技师"
    technician_in_charge = "主管技师"
    technician = "技师"
    chief_nurse = "主任护师"
    associate_chief_nurse = "副主任护师"
    nurse_in_charge = "主管护师"
    nurse = "护师"
    village_doctor = "乡村医生"


# doctors of intermediate title or above (中级及以上职称医师): national indicator (4)
INTERMEDIATE_OR_ABOVE = frozenset({Title.chief, Title.associate_chief, Title.attending})


class Practitioner(IdMixin, CreatedMixin, Base):
    __tablename__ = "practitioner"

    name: Mapped[str] = mapped_column(String(50))
    sex: Mapped[str | None] = mapped_column(String(2))
    title: Mapped[str] = mapped_column(String(20))
    specialty: Mapped[str | None] = mapped_column(String(64))
    licence_no: Mapped[str | None] = mapped_column(String(64))
    licence_date: Mapped[date | None] = mapped_column(Date)  # start of independent practice
    is_department_head: Mapped[bool] = mapped_column(Boolean, default=False)
    is_trainee: Mapped[bool] = mapped_column(Boolean, default=False)
    home_institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("department.id"))
    phone: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    home_institution: Mapped[Institution] = relationship(lazy="raise")
    department: Mapped[Department | None] = relationship(lazy="raise")
    sites: Mapped[list[PracticeSite]] = relationship(back_populates="practitioner", lazy="raise")

    def years_of_practice(self, on: date) -> int:
        if self.licence_date is None:
            return 0
        years = on.year - self.licence_date.year
        if (on.month, on.day) < (self.licence_date.month, self.licence_date.day):
            years -= 1
        return max(years, 0)


class PracticeSite(IdMixin, CreatedMixin, Base):
    """A weekly session where a practitioner works at a member site other than home."""

    __tablename__ = "practice_site"

    practitioner_id: Mapped[int] = mapped_column(BigId, ForeignKey("practitioner.id"), index=True)
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("department.id"))
    weekday: Mapped[int | None] = mapped_column(SmallInteger)  # 1=Mon … 7=Sun; None = as arranged
    period: Mapped[str] = mapped_column(String(8), default="all")  # am | pm | all
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(String(200))

    practitioner: Mapped[Practitioner] = relationship(back_populates="sites", lazy="raise")
    institution: Mapped[Institution] = relationship(lazy="raise")
    department: Mapped[Department | None] = relationship(lazy="raise")
