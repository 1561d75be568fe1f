"""User administration input/output."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from yilianti.kit.schemas import Id
from yilianti.models.auth import Role

ROLE_CODES = [r.value for r in Role]
# roles held at an institution; alliance_admin is held for an alliance, system_admin for everything
INSTITUTION_ROLES = ("institution_admin", "doctor", "nurse", "reader", "coordinator", "auditor", "health_commission")


def _blank(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


class RoleIn(BaseModel):
    role: str = Field(description="one of: " + ", ".join(ROLE_CODES))
    institution_id: Id | None = Field(default=None, description="required for institution roles")
    alliance_id: Id | None = Field(default=None, description="required for alliance_admin")

    @field_validator("institution_id", "alliance_id", mode="before")
    @classmethod
    def _none(cls, value: object) -> object:
        return _blank(value)


class UserIn(BaseModel):
    username: str = Field(max_length=64)
    display_name: str = Field(max_length=64)
    password: str = Field(max_length=128)
    practitioner_id: Id | None = None
    roles: list[RoleIn] = []

    @field_validator("practitioner_id", mode="before")
    @classmethod
    def _none(cls, value: object) -> object:
        return _blank(value)


class UserPatch(BaseModel):
    """Only the fields sent change. `password` sets a temporary password (an admin reset);
    `active: false` deactivates and ends every session; `unlock: true` clears a lock-out."""

    display_name: str | None = Field(default=None, max_length=64)
    practitioner_id: Id | None = None
    active: bool | None = None
    password: str | None = Field(default=None, max_length=128)
    unlock: bool | None = None


class TokenIn(BaseModel):
    institution_id: Id = Field(description="the institution the member system acts for")
    name: str = Field(max_length=100, description="e.g. the member's HIS")
    days: int | None = Field(default=365, ge=1, le=3650, description="validity; null = no expiry")


class RoleOut(BaseModel):
    id: int
    role: str
    institution_id: int | None
    institution_name: str | None
    alliance_id: int | None
    alliance_name: str | None


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    practitioner_id: int | None
    active: bool
    locked: bool
    failed_logins: int
    last_login_at: datetime | None
    roles: list[RoleOut]


class UserPage(BaseModel):
    items: list[UserOut]
    total: int
    page: int
    per_page: int


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    institution_id: int
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenIssuedOut(TokenOut):
    token: str = Field(description="shown only once; store it in the member system")


class InstitutionRef(BaseModel):
    id: int
    name: str


class MeOut(BaseModel):
    user_id: int
    username: str
    display_name: str
    practitioner_id: int | None
    acting_institution: InstitutionRef | None
    roles: list[str] = Field(description="effective roles for the acting institution (plus global ones)")
    assignments: list[RoleOut]
    institutions: list[InstitutionRef] = Field(description="institutions the user can switch to")
    alliance_admin_of: list[int]
    via_token: bool
