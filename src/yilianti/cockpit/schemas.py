"""The cockpit's JSON: an alliance's figures for a period (what the charts and a member system read)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, Field

from yilianti.kit.schemas import Id


class FigureOut(BaseModel):
    code: str
    name: str
    name_en: str
    unit: str
    value: float | None
    target: float | None
    status: str | None  # green | amber | red
    trend: str | None  # up | down | flat
    note: str | None  # why there is no value under a member or department filter
    by_month: dict[str, float | None]


class FiguresOut(BaseModel):
    alliance_id: int
    start: str  # YYYY-MM
    end: str
    member: int | None
    department: int | None
    figures: list[FigureOut]


# ------------------------------------------------------------------------------------------ encounter imports

Money = Annotated[float, Field(ge=0, le=1e10, allow_inf_nan=False)]  # yuan
Number = Annotated[str, Field(min_length=1, max_length=64)]


class EncounterItem(BaseModel):
    source_no: Number = Field(description="the HIS's encounter number (门诊号/住院号), unique within the institution")
    kind: str = Field(max_length=16, description="outpatient | emergency | inpatient (or 门诊 / 急诊 / 住院)")
    visit_date: date = Field(description="the visit, or the admission of an inpatient stay")
    discharge_date: date | None = Field(None, description="an inpatient stay's discharge (none while in hospital)")
    department: str | None = Field(None, max_length=64, description="the department as the HIS names it")
    resident_id: str | None = Field(None, max_length=32, description="the patient's resident ID, to match the person")
    total_cost: Money | None = None
    insurance_paid: Money | None = Field(None, description="paid by the basic medical insurance fund")
    tcm: bool = Field(False, description="a traditional Chinese medicine visit (中医类)")


class EncounterBatchIn(BaseModel):
    institution_id: Id | None = Field(None, description="the member whose encounters these are (default: the caller's)")
    encounters: list[EncounterItem] = Field(max_length=20_000)


class OutOfCountyItem(BaseModel):
    settlement_no: Number = Field(description="the insurance fund's settlement number, unique within the alliance")
    kind: str = Field(max_length=16)
    hospital: str = Field(min_length=1, max_length=200, description="the hospital outside the county")
    visit_date: date
    discharge_date: date | None = None
    home_institution_id: Id | None = Field(None, description="the member the resident belongs to, when known")
    total_cost: Money | None = None
    insurance_paid: Money | None = None


class OutOfCountyBatchIn(BaseModel):
    alliance_id: Id
    visits: list[OutOfCountyItem] = Field(max_length=20_000)


class ImportedOut(BaseModel):
    created: int
    updated: int
    matched: int = Field(description="encounters matched to a person by resident ID")
