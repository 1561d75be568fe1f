"""Patient registration input, validated as a registration clerk would."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from yilianti.kit import validate as v
from yilianti.kit.schemas import Id


class RegistrationIn(BaseModel):
    name: str = Field(max_length=60)
    sex: str = "未知"
    birth_date: date | None = None
    resident_id: str | None = None
    phone: str | None = None
    address: str | None = Field(default=None, max_length=300)
    mrn: str | None = Field(default=None, max_length=64, description="the registering member's record number")
    insurance_no: str | None = Field(default=None, max_length=64)
    health_card_no: str | None = Field(default=None, max_length=64)
    guardian_name: str | None = None
    guardian_relation: str | None = Field(default=None, max_length=16)
    guardian_phone: str | None = None
    consent_scope: Literal["all", "alliance", "none"] = "none"
    consent_alliance_id: Id | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return v.person_name(value)

    @field_validator("sex")
    @classmethod
    def _sex(cls, value: str) -> str:
        return v.sex(value or "未知")

    @field_validator("resident_id", "phone", "guardian_phone", "guardian_name", "mrn", "insurance_no",
                     "health_card_no", "address", "guardian_relation", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("resident_id")
    @classmethod
    def _rid(cls, value: str | None) -> str | None:
        return None if value is None else v.resident_id(value).number

    @field_validator("phone", "guardian_phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else v.mobile(value)

    @field_validator("guardian_name")
    @classmethod
    def _gname(cls, value: str | None) -> str | None:
        return None if value is None else v.person_name(value)

    @field_validator("birth_date")
    @classmethod
    def _birth(cls, value: date | None) -> date | None:
        return None if value is None else v.birth_date(value)

    @model_validator(mode="after")
    def _consistent(self) -> RegistrationIn:
        if self.resident_id:
            rid = v.resident_id(self.resident_id)
            if self.birth_date is None:
                self.birth_date = rid.birth_date
            elif self.birth_date != rid.birth_date:
                raise ValueError("出生日期与身份证号不一致")
            if self.sex == "未知":
                self.sex = rid.sex
            elif self.sex != rid.sex:
                raise ValueError("性别与身份证号不一致")
        if self.birth_date is None:
            raise ValueError("请填写出生日期或身份证号")
        if self.consent_scope == "alliance" and not self.consent_alliance_id:
            raise ValueError("请选择授权共享的医联体")
        return self


class ConsentIn(BaseModel):
    scope: Literal["all", "alliance"]
    alliance_id: Id | None = None
    note: str | None = Field(default=None, max_length=300)


class IdentifierOut(BaseModel):
    authority: str
    value: str


class PatientOut(BaseModel):
    id: int
    name: str
    sex: str
    birth_date: date | None
    phone: str | None
    address: str | None
    guardian_name: str | None
    guardian_phone: str | None
    identifiers: list[IdentifierOut] = []
    access_basis: str | None = None
    shared_record_visible: bool | None = None


class PatientBrief(BaseModel):
    id: int
    name: str
    sex: str
    birth_date: date | None


class RegisteredOut(PatientOut):
    existing: bool
    link: str = "new"  # resident_id | score | new: how the master patient index placed the registration
    review_candidates: int = 0  # possible duplicates sent to identity review


class ConsentOut(BaseModel):
    id: int
    scope: str
    alliance_id: int | None
    granted_at: datetime
    withdrawn_at: datetime | None


class BreakGlassIn(BaseModel):
    authority: str = "CN-RIC"
    value: str
    reason: str
