"""Encounters (就诊) imported from the members' HIS, and the out-of-county visit register (县外就医登记) imported from
the insurance fund's settlement data — the rows behind the national indicators of visits, inpatient stays, costs and
the insurance fund (cockpit/measures.py; issue 19).

Both are imported, never entered: a row is keyed by its source's own number (the HIS encounter number per
institution; the settlement number per alliance), so sending a batch again updates the rows it already sent
(incremental and idempotent, cockpit/encounters.py).

`day` dates a row in the cockpit: the visit day of an outpatient or emergency visit, the discharge day of an
inpatient stay (出院人次; none while the patient is still in hospital) — set by `counted_on`, the one rule.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, IdMixin


class EncounterKind:
    outpatient = "outpatient"  # 门诊
    emergency = "emergency"  # 急诊
    inpatient = "inpatient"  # 住院
    ALL = ("outpatient", "emergency", "inpatient")
    VISITS = ("outpatient", "emergency")  # 门急诊: the visits (诊疗人次) of indicators 7 and 12


def counted_on(kind: str, visit_date: date | None, discharge_date: date | None) -> date | None:
    """The day that dates an encounter (or an out-of-county visit) in the cockpit."""
    return discharge_date if kind == EncounterKind.inpatient else visit_date


class Encounter(IdMixin, Base):
    """One visit or inpatient stay at a member institution, as its HIS recorded it."""

    __tablename__ = "encounter"
    __table_args__ = (UniqueConstraint("institution_id", "source_no"),
                      Index("ix_encounter_day_institution", "day", "institution_id"),
                      Index("ix_encounter_patient_visit", "patient_id", "visit_date"))

    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    source_no: Mapped[str] = mapped_column(String(64))  # the HIS's encounter number (门诊号/住院号), unique per member
    kind: Mapped[str] = mapped_column(String(16))  # EncounterKind
    department_name: Mapped[str | None] = mapped_column(String(64))  # as the HIS names it
    department_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("department.id"))  # when it names ours
    visit_date: Mapped[date] = mapped_column(Date)  # the visit, or the admission of a stay
    discharge_date: Mapped[date | None] = mapped_column(Date)
    day: Mapped[date | None] = mapped_column(Date)  # counted_on
    patient_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("patient.id"))  # by resident ID, when given
    total_cost: Mapped[float] = mapped_column(Float, default=0)  # yuan
    insurance_paid: Mapped[float] = mapped_column(Float, default=0)  # yuan paid by the basic insurance fund
    tcm: Mapped[bool] = mapped_column(Boolean, default=False)  # 中医类 (indicator 12)
    imported_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    imported_at: Mapped[datetime] = mapped_column(default=clock.now)


class OutOfCountyVisit(IdMixin, Base):
    """A visit or stay of a county resident at a hospital outside the county, from the insurance settlement data:
    the out-of-county part of the denominators of indicators 8 and 11 (县域内就诊率)."""

    __tablename__ = "out_of_county_visit"
    __table_args__ = (UniqueConstraint("alliance_id", "settlement_no"),
                      Index("ix_out_of_county_visit_alliance_day", "alliance_id", "day"))

    alliance_id: Mapped[int] = mapped_column(BigId, ForeignKey("alliance.id"))  # the resident's county alliance
    home_institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))  # the resident's member
    settlement_no: Mapped[str] = mapped_column(String(64))  # the fund's settlement number (结算单号)
    kind: Mapped[str] = mapped_column(String(16))  # EncounterKind
    hospital: Mapped[str] = mapped_column(String(200))  # where, outside the county
    visit_date: Mapped[date] = mapped_column(Date)
    discharge_date: Mapped[date | None] = mapped_column(Date)
    day: Mapped[date | None] = mapped_column(Date)  # counted_on
    total_cost: Mapped[float] = mapped_column(Float, default=0)
    insurance_paid: Mapped[float] = mapped_column(Float, default=0)
    imported_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    imported_at: Mapped[datetime] = mapped_column(default=clock.now)
