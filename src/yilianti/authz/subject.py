"""Who is acting, for which institution, with which roles."""

from __future__ import annotations

from dataclasses import dataclass, field

from yilianti.models.auth import CLINICAL_ROLES, Role


@dataclass(frozen=True)
class InstitutionChoice:
    id: int
    name: str


@dataclass(frozen=True)
class Subject:
    user_id: int
    username: str
    display_name: str
    practitioner_id: int | None
    acting_institution_id: int | None
    acting_institution_name: str | None
    roles: frozenset[str]  # effective for the acting institution, plus global roles
    alliance_admin_of: frozenset[int] = frozenset()
    institutions: tuple[InstitutionChoice, ...] = ()
    via_token: bool = False
    all_roles: frozenset[str] = field(default_factory=frozenset)
    ip: str | None = None
    # an auditor sees the audit of the institution it holds the role at; an auditor role given for an alliance
    # sees its members', one given for neither (a platform auditor) everything (audit/repository.visible_scope)
    auditor_of_alliances: frozenset[int] = frozenset()
    platform_auditor: bool = False
    # an OAuth2 system client's access token (auth/clients.py): the FHIR scopes it was granted; None otherwise
    scopes: frozenset[str] | None = None

    @property
    def audits_everything(self) -> bool:
        return self.is_system_admin or self.platform_auditor

    @property
    def is_system_admin(self) -> bool:
        return Role.system_admin in self.roles

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def is_clinical(self) -> bool:
        return bool(self.roles & CLINICAL_ROLES) and self.acting_institution_id is not None

    @property
    def channel(self) -> str:
        return "api" if self.via_token else "web"
