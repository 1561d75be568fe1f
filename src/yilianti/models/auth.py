"""User accounts, role assignments and API tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
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
    # set: an OAuth2 access token of a system client (auth/clients.py), good for the FHIR API with these scopes
    # only; NULL: the platform's own token, as its user
    scope: Mapped[str | None] = mapped_column(String(500))


class SystemClient(IdMixin, CreatedMixin, Base):
    """A member institution's system (HIS, the provincial platform) using the FHIR API with OAuth2 client
    credentials (SMART Backend Services): it authenticates with a JWT signed by one of its registered public keys
    (`jwks`) or with a client secret, and acts as its own account (`user_id`) for one institution."""

    __tablename__ = "system_client"

    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"), index=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id"))
    scope: Mapped[str] = mapped_column(String(500))  # the scopes it may be granted, space-separated
    jwks: Mapped[str | None] = mapped_column(Text)  # JSON Web Key Set of its public keys
    secret_hash: Mapped[str | None] = mapped_column(String(128))  # sha256 of the client secret
    revoked_at: Mapped[datetime | None] = mapped_column()


class ClientAssertion(Base):
    """A used client assertion (`client_id` + its `jti`), kept until it expires: a replayed one is refused."""

    __tablename__ = "client_assertion"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginSession(Base):
    """A signed-in browser: the cookie carries a random session id, this row (keyed by its SHA-256) says
    whether it still counts. Logging out ends it here, so a cookie copied before the logout stops working."""

    __tablename__ = "login_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's session id
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
