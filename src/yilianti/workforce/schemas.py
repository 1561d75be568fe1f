"""Practitioner and practice-site input/output, validated as a personnel office would."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

from yilianti.exceptions import parse_input
from yilianti.kit import clock
from yilianti.kit import validate as v
from yilianti.kit.schemas import Day, Id
from yilianti.models.workforce import Title

M = TypeVar("M", bound=BaseModel)

WEEKDAYS = {1: "周一", 2: "周二", 3: "周三", 4: "周四", 5: "周五", 6: "周六", 7: "周日"}
PERIODS = {"am": "上午", "pm": "下午", "all": "全天"}
TITLES = [t.value for t in Title]


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate `data` into `model`; errors become InvalidInput with one message per field."""
    return parse_input(model, data)


def blank_to_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(val, str) and not val.strip() else val) for k, val in data.items()}


class PractitionerIn(BaseModel):
    name: str = Field(max_length=50)
    sex: Literal["男", "女"] | None = None
    title: str = Field(description="职称, one of: " + " / ".join(TITLES))
    specialty: str | None = Field(default=None, max_length=64)
    licence_no: str | None = Field(default=None, max_length=64, description="执业证书编码")
    licence_date: Day | None = Field(default=None, description="start of independent practice")
    is_department_head: bool = False
    is_trainee: bool = Field(default=False, description="进修 (a doctor in further training)")
    home_institution_id: Id
    department_id: Id | None = None
    phone: str | None = None

    @field_validator("sex", "specialty", "licence_no", "phone", "department_id", "licence_date", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return v.person_name(value)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = value.strip()
        if value not in TITLES:
            raise ValueError("职称不在允许范围内")
        return value

    @field_validator("specialty", "licence_no")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value else value

    @field_validator("licence_date")
    @classmethod
    def _licence(cls, value: date | None) -> date | None:
        if value is not None:
            if value > clock.today_local():
                raise ValueError("执业起始日期不能晚于今天")
            if value.year < 1940:
                raise ValueError("执业起始日期不合理")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else v.mobile(value)


class PractitionerPatch(BaseModel):
    """Only the fields sent are changed; the result is validated like a new practitioner."""

    name: str | None = None
    sex: Literal["男", "女"] | None = None
    title: str | None = None
    specialty: str | None = None
    licence_no: str | None = None
    licence_date: Day | None = None
    is_department_head: bool | None = None
    is_trainee: bool | None = None
    home_institution_id: Id | None = None
    department_id: Id | None = None
    phone: str | None = None
    active: bool | None = None


class SiteIn(BaseModel):
    institution_id: Id
    department_id: Id | None = None
    weekday: int | None = Field(default=None, description="1=Monday … 7=Sunday; empty = as arranged",
                                json_schema_extra={"minimum": 1, "maximum": 7})
    period: Literal["am", "pm", "all"] = "all"
    starts_on: Day | None = None
    ends_on: Day | None = None
    note: str | None = Field(default=None, max_length=200)

    @field_validator("department_id", "weekday", "starts_on", "ends_on", "note", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("weekday")
    @classmethod
    def _weekday(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 7:
            raise ValueError("星期应为1（周一）到7（周日）")
        return value


class SiteOut(BaseModel):
    id: int
    institution_id: int
    institution_name: str
    department_id: int | None
    department_name: str | None
    weekday: int | None
    period: str
    starts_on: date | None
    ends_on: date | None
    note: str | None


class PractitionerOut(BaseModel):
    id: int
    name: str
    sex: str | None
    title: str
    specialty: str | None
    licence_no: str | None
    licence_date: date | None
    years_of_practice: int
    is_department_head: bool
    is_trainee: bool
    home_institution_id: int
    home_institution_name: str
    department_id: int | None
    department_name: str | None
    phone: str | None
    active: bool
    sites: list[SiteOut] = []


class PractitionerPage(BaseModel):
    items: list[PractitionerOut]
    total: int
    page: int
    per_page: int
