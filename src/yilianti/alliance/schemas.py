"""Alliance registry input and output models.

Input models validate one record on its own (enums, ranges, formats); rules that need the
database (unique names, overlapping memberships) are checked in `service`. Forms and the
JSON API both go through `parse()` so that errors are field-level messages in Chinese.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

from yilianti.exceptions import parse_input
from yilianti.kit.schemas import Day, Id
from yilianti.kit.validate import normalise_text
from yilianti.models.alliance import AllianceModel, InstitutionKind, MemberRole

ReserveFor = Literal["grassroots", "members"]
M = TypeVar("M", bound=BaseModel)

KEY_RE = re.compile(r"[a-z0-9][a-z0-9_-]{1,63}")
FOUNDED_RE = re.compile(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")
PHONE_RE = re.compile(r"[0-9+\-() 转]{5,32}")


def _blank_to_none(value: object) -> object:
    if isinstance(value, str):
        value = normalise_text(value)
        return value or None
    return value


def _share(value: object) -> object:
    """Accept 0.3334, "0.3334" or "33.34%"."""
    if isinstance(value, str):
        text = normalise_text(value)
        if not text:
            return None
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError("应为 0 到 1 之间的小数，或百分数（如 33.34%）") from None
    return value


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate `data` into `model`; errors become InvalidInput with one message per field."""
    return parse_input(model, data)


# --------------------------------------------------------------------------- alliance


CutoffHours = Annotated[int, Field(ge=0, le=720)]
"""Hours before a session when unused reserved slots return to the public pool."""

class AllianceIn(BaseModel):
    """A whole alliance record (create, or the merged result of an update)."""

    key: str = Field(description="short unique code, lower-case letters, digits, - and _")
    name: str = Field(max_length=200)
    name_en: str | None = Field(default=None, max_length=200)
    model: AllianceModel
    specialty: str | None = Field(default=None, max_length=64)
    tight: bool = False
    cross_province: bool = False
    founded: str | None = Field(default=None, description='as reported: "2013", "2013-05" or "2013-05-20"')
    notes: str | None = None
    slot_reserve_share: float = Field(default=0.3334, ge=0, le=1, description="share of the lead's outpatient slots reserved for members (0–1)")
    bed_reserve_share: float = Field(default=0.25, ge=0, le=1, description="share of the lead's inpatient beds reserved (0–1)")
    reserve_for: ReserveFor = Field(default="grassroots", description="grassroots members only, or every member")
    reserve_cutoff_hours: CutoffHours = Field(default=24, description="unused reserved slots return to the public pool this many hours before the session")

    @field_validator("key", "name", "name_en", "specialty", "founded", "notes", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_to_none(value)

    @field_validator("slot_reserve_share", "bed_reserve_share", mode="before")
    @classmethod
    def _shares(cls, value: object) -> object:
        return _share(value)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        value = value.lower()
        if not KEY_RE.fullmatch(value):
            raise ValueError("编码为2–64位小写字母、数字、- 或 _")
        return value

    @field_validator("founded")
    @classmethod
    def _founded(cls, value: str | None) -> str | None:
        if value is None:
            return None
        m = FOUNDED_RE.fullmatch(value)
        if not m or not 1949 <= int(m.group(1)) <= 2100 or (m.group(2) and not 1 <= int(m.group(2)) <= 12) \
                or (m.group(3) and not 1 <= int(m.group(3)) <= 31):
            raise ValueError("成立时间格式应为 YYYY、YYYY-MM 或 YYYY-MM-DD")
        return value

    @field_validator("slot_reserve_share", "bed_reserve_share")
    @classmethod
    def _round(cls, value: float) -> float:
        return round(value, 4)


class AllianceCreate(AllianceIn):
    pass


class AlliancePatch(BaseModel):
    """Only the fields sent are changed."""

    key: str | None = None
    name: str | None = None
    name_en: str | None = None
    model: str | None = None
    specialty: str | None = None
    tight: bool | None = None
    cross_province: bool | None = None
    founded: str | None = None
    notes: str | None = None
    slot_reserve_share: float | str | None = None
    bed_reserve_share: float | str | None = None
    reserve_for: str | None = None
    reserve_cutoff_hours: CutoffHours | None = None
    active: bool | None = None


class MemberBrief(BaseModel):
    id: int
    name: str
    level: int | None
    kind: str


class AllianceOut(BaseModel):
    id: int
    key: str
    name: str
    name_en: str | None
    model: str
    specialty: str | None
    tight: bool
    cross_province: bool
    founded: str | None
    notes: str | None
    active: bool
    slot_reserve_share: float
    bed_reserve_share: float
    reserve_for: str
    reserve_cutoff_hours: int
    member_count: int = 0
    leads: list[MemberBrief] = []


# --------------------------------------------------------------------------- institution


class InstitutionIn(BaseModel):
    name: str = Field(max_length=200)
    short_name: str | None = Field(default=None, max_length=100)
    code: str | None = Field(default=None, max_length=64, description="医疗机构登记号, when known")
    level: Literal[1, 2, 3] | None = Field(default=None, description="3 三级 / 2 二级 / 1 一级; empty = not reported")
    kind: InstitutionKind
    province: str = Field(max_length=32)
    city: str | None = Field(default=None, max_length=32)
    county: str | None = Field(default=None, max_length=32)
    address: str | None = Field(default=None, max_length=300)
    phone: str | None = Field(default=None, max_length=32)

    @field_validator("name", "short_name", "code", "province", "city", "county", "address", "phone", "level",
                     mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_to_none(value)

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not PHONE_RE.fullmatch(value):
            raise ValueError("电话号码格式不正确")
        return value


class InstitutionPatch(BaseModel):
    name: str | None = None
    short_name: str | None = None
    code: str | None = None
    level: int | str | None = Field(default=None, json_schema_extra={"minimum": 1, "maximum": 3})  # InstitutionIn decides
    kind: str | None = None
    province: str | None = None
    city: str | None = None
    county: str | None = None
    address: str | None = None
    phone: str | None = None
    active: bool | None = None


class InstitutionOut(BaseModel):
    id: int
    name: str
    short_name: str | None
    code: str | None
    level: int | None
    kind: str
    grassroots: bool
    province: str
    city: str | None
    county: str | None
    address: str | None
    phone: str | None
    active: bool


# --------------------------------------------------------------------------- membership


class MembershipIn(BaseModel):
    institution_id: Id
    role: MemberRole = MemberRole.member
    joined_on: Day | None = None
    left_on: Day | None = None
    notes: str | None = None

    @field_validator("joined_on", "left_on", "notes", "institution_id", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_to_none(value)


class MembershipEnd(BaseModel):
    left_on: Day | None = Field(default=None, description="defaults to today")

    @field_validator("left_on", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_to_none(value)


class MemberOut(BaseModel):
    membership_id: int
    alliance_id: int
    institution: InstitutionOut
    role: str
    tier: str
    joined_on: date | None
    left_on: date | None
    current: bool
    notes: str | None


# --------------------------------------------------------------------------- department


class DepartmentIn(BaseModel):
    name: str = Field(max_length=100)
    specialty: str | None = Field(default=None, max_length=64)

    @field_validator("name", "specialty", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_to_none(value)


class DepartmentPatch(BaseModel):
    name: str | None = None
    specialty: str | None = None
    active: bool | None = None


class DepartmentOut(BaseModel):
    id: int
    institution_id: int
    name: str
    specialty: str | None
    active: bool
