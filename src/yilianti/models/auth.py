"""User accounts, role assignments and API tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yilianti.models.alliance import Alliance, Institution
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin
from yilianti.models.workforce import Practitioner


class Role(StrEnum):
    system_admin = "system_admin"
    alliance_admin = "alliance_admin"
    institution_admin = "institution_admin"
    doctor = "doctor"
    nurse = "nurse"
    reader = "reader"
    coordinator = "coordinator"
    auditor = "auditor"
    health_commission = "health_commission"  # a 卫健委 seeing the cockpits of its region, no patient data


CLINICAL_ROLES = frozenset({Role.doctor, Role.nurse, Role.reader, Role.coordinator})


class User(IdMixin, CreatedMixin, Base):
    __tablename__ = "app_user"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    practitioner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("practitioner.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_login_at: Mapped[datetime | None] = mapped_column()
    password_changed_at: Mapped[datetime | None] = mapped_column()
    session_epoch: Mapped[int] = mapped_column(default=0)  # bumped to end every session
    locale: Mapped[str | None] = mapped_column(String(8))

    practitioner: Mapped[Practitioner | None] = relationship(lazy="raise")
    roles: Mapped[list[RoleAssignment]] = relationship(back_populates="user", lazy="raise")


class RoleAssignment(IdMixin, CreatedMixin, Base):
    """A role held at an institution (or for an alliance; system_admin holds neither)."""

    __tablename__ = "role_assignment"
    __table_args__ = (UniqueConstraint("user_id", "role", "institution_id", "alliance_id"),)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    alliance_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("alliance.id"))

    user: Mapped[User] = relationship(back_populates="roles", lazy="raise")
    institution: Mapped[Institution | None] = relationship(lazy="raise")
    alliance: Mapped[Alliance | None] = relationship(lazy="raise")


class ApiToken(IdMixin, CreatedMixin, Base):
    """Bearer token for a member system; acts as its user for one institution."""

    __tablename__ = "api_token"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id"), index=True)
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


class LoginSession(Base):
    """A signed-in browser: the cookie carries a random session id, this row (keyed by its SHA-256) says
    whether it still counts. Logging out ends it here, so a cookie copied before the logout stops working."""

    __tablename__ = "login_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's session id
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
