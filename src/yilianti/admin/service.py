"""User administration: accounts, role assignments, lock-outs, password resets, API tokens.

Who may do what (scoping lives in `admin.scope`):
- system_admin: everything, including system_admin and alliance_admin roles.
- institution_admin: users holding a role at the institution they act for (and no
  system/alliance administrator role); only institution roles at that institution.
- alliance_admin: read-only.
Every change is audited in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.admin import repository as repo
from yilianti.admin import scope
from yilianti.admin.schemas import INSTITUTION_ROLES, ROLE_CODES, RoleIn, UserIn
from yilianti.audit import service as audit
from yilianti.auth import clients
from yilianti.auth import repository as auth_repo
from yilianti.auth import service as auth
from yilianti.auth.security import hash_password
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.repository import Page
from yilianti.kit.validate import Invalid
from yilianti.kit.validate import username as valid_username
from yilianti.models.alliance import Alliance, Institution
from yilianti.models.auth import ApiToken, Role, RoleAssignment, User
from yilianti.models.workforce import Practitioner

ADMIN_LEVEL_ROLES = frozenset({Role.system_admin, Role.alliance_admin})


UserPage = Page[User]


# ---------------------------------------------------------------- reading


def _visible_filter(db: Session, actor: Subject) -> Any:
    institutions = scope.readable_institutions(db, actor)
    if institutions is None:
        return None
    return repo.users_with_roles_in(
        institutions, actor.alliance_admin_of if actor.has("alliance_admin") and actor.alliance_admin_of else None)


def list_users(db: Session, actor: Subject, q: str | None = None, page: int = 1, per_page: int = 30,
               institution_id: int | None = None) -> UserPage:
    scope.require_admin(actor)
    return kit.page(db, repo.users_statement(_visible_filter(db, actor), q, institution_id), page, per_page)


def get_user(db: Session, actor: Subject, user_id: int) -> User:
    """A user the administrator may see (404 otherwise), with roles loaded."""
    scope.require_admin(actor)
    user = repo.user_with_roles(db, user_id)
    if user is None:
        raise NotFound()
    visible = _visible_filter(db, actor)
    if visible is not None and not repo.is_user(db, user_id, visible):
        raise NotFound()
    return user


def can_manage(actor: Subject, user: User) -> bool:
    """Change this (loaded) user: system_admin, or the admin of an institution where the user works."""
    if actor.is_system_admin:
        return True
    allowed = scope.writable_institutions(actor) or set()
    if not allowed or any(r.role in ADMIN_LEVEL_ROLES for r in user.roles):
        return False
    return any(r.institution_id in allowed for r in user.roles)


def _managed(db: Session, actor: Subject, user_id: int) -> User:
    user = get_user(db, actor, user_id)
    if not can_manage(actor, user):
        raise Forbidden("您只能管理本机构的用户")
    return user


def role_choices(db: Session, actor: Subject) -> dict[str, Any]:
    """What the forms offer this administrator."""
    writable = scope.writable_institutions(actor)
    institutions = repo.active_institution_choices(db, writable)
    alliances = repo.alliance_choices(db) if actor.is_system_admin else []
    roles = ROLE_CODES if actor.is_system_admin else list(INSTITUTION_ROLES)
    practitioners = [(i, f"{n}（{inst}）") for i, n, inst in repo.practitioner_choices(db, writable)]
    return {"institutions": institutions, "alliances": alliances, "roles": roles, "practitioners": practitioners}


# ---------------------------------------------------------------- checks


def _check_role(db: Session, actor: Subject, r: RoleIn) -> tuple[RoleIn, dict[str, str]]:
    """Normalise one assignment; Forbidden when outside the actor's reach, field errors otherwise."""
    fields: dict[str, str] = {}
    if r.role not in ROLE_CODES:
        return r, {"role": "未知角色"}
    if r.role == Role.system_admin:
        if not actor.is_system_admin:
            raise Forbidden("只有系统管理员可以授予系统管理员角色")
        return RoleIn(role=r.role), fields
    if r.role == Role.alliance_admin:
        if not actor.is_system_admin:
            raise Forbidden("只有系统管理员可以授予医联体管理员角色")
        if r.alliance_id is None:
            fields["alliance_id"] = "请选择医联体"
        elif kit.get(db, Alliance, r.alliance_id) is None:
            fields["alliance_id"] = "医联体不存在"
        return RoleIn(role=r.role, alliance_id=r.alliance_id), fields
    if r.institution_id is None:
        if r.role == Role.auditor and actor.is_system_admin:
            return RoleIn(role=r.role), fields  # a platform-wide auditor
        if not actor.is_system_admin and actor.acting_institution_id:
            r = RoleIn(role=r.role, institution_id=actor.acting_institution_id)
        else:
            return r, {"institution_id": "请选择机构"}
    if not scope.can_write(actor, r.institution_id):
        raise Forbidden("您只能为本机构的人员分配角色")
    if kit.get(db, Institution, r.institution_id) is None:
        fields["institution_id"] = "机构不存在"
    return RoleIn(role=r.role, institution_id=r.institution_id), fields


def _check_practitioner(db: Session, actor: Subject, practitioner_id: int | None,
                        user_id: int | None = None) -> dict[str, str]:
    if practitioner_id is None:
        return {}
    p = kit.get(db, Practitioner, practitioner_id)
    if p is None:
        return {"practitioner_id": "医务人员不存在"}
    if not scope.can_write(actor, p.home_institution_id):
        return {"practitioner_id": "只能关联本机构的医务人员"}
    other = repo.username_linked_to(db, practitioner_id, user_id)
    if other is not None:
        return {"practitioner_id": "该医务人员已关联其他账号"}
    return {}


# ---------------------------------------------------------------- changes


def create_user(db: Session, actor: Subject, data: UserIn) -> User:
    scope.require_admin(actor)
    if not scope.writable_institutions(actor) and not actor.is_system_admin:
        raise Forbidden("医联体管理员只能查看，不能修改")
    fields: dict[str, str] = {}
    roles: list[RoleIn] = []
    for r in data.roles:
        checked, errs = _check_role(db, actor, r)
        roles.append(checked)
        for k, v in errs.items():
            fields.setdefault(k, v)
    if not roles and not actor.is_system_admin:
        fields["role"] = "请至少分配一个角色"
    try:
        name = valid_username(data.username)
        if auth_repo.user_id_named(db, name) is not None:
            fields["username"] = "用户名已存在"
    except Invalid as exc:
        fields["username"] = exc.message
    try:
        auth.check_password_strength(data.password)
    except InvalidInput as exc:
        fields.update(exc.fields)
    if not data.display_name.strip():
        fields["display_name"] = "必填"
    fields.update(_check_practitioner(db, actor, data.practitioner_id))
    if len({(r.role, r.institution_id, r.alliance_id) for r in roles}) != len(roles):
        fields.setdefault("role", "角色重复")
    if fields:
        raise InvalidInput(fields=fields)
    return auth.create_user(db, actor, data.username, data.password, data.display_name,
                            [(r.role, r.institution_id, r.alliance_id) for r in roles],
                            practitioner_id=data.practitioner_id)


def update_user(db: Session, actor: Subject, user_id: int, changes: dict[str, Any]) -> User:
    """Display name, practitioner link, active, temporary password, unlock — each audited."""
    user = _managed(db, actor, user_id)
    fields: dict[str, str] = {}
    if "display_name" in changes and not (changes["display_name"] or "").strip():
        fields["display_name"] = "必填"
    if "practitioner_id" in changes:
        fields.update(_check_practitioner(db, actor, changes["practitioner_id"], user.id))
    password = changes.get("password")
    if password is not None:
        try:
            auth.check_password_strength(password)
        except InvalidInput as exc:
            fields.update(exc.fields)
    if changes.get("active") is False and user.id == actor.user_id:
        fields["active"] = "不能停用自己的账号"
    if fields:
        raise InvalidInput(fields=fields)
    before: dict[str, Any] = {"display_name": user.display_name, "practitioner_id": user.practitioner_id}
    after: dict[str, Any] = dict(before)
    if "display_name" in changes:
        after["display_name"] = changes["display_name"].strip()
    if "practitioner_id" in changes:
        after["practitioner_id"] = changes["practitioner_id"]
    change = audit.diff(before, after)
    if change:
        user.display_name, user.practitioner_id = after["display_name"], after["practitioner_id"]
        audit.record(db, actor, "update", "user", user.id, detail=change)
    if changes.get("active") is not None and bool(changes["active"]) != user.active:
        _set_active(db, actor, user, bool(changes["active"]))
    if password is not None:
        _reset_password(db, actor, user, password)
    if changes.get("unlock"):
        _unlock(db, actor, user)
    db.flush()
    return user


def _set_active(db: Session, actor: Subject, user: User, active: bool) -> None:
    user.active = active
    if not active:
        user.session_epoch += 1  # every live session of this user ends on its next request
    audit.record(db, actor, "reactivate" if active else "deactivate", "user", user.id,
                 detail={"active": {"from": not active, "to": active}})


def set_active(db: Session, actor: Subject, user_id: int, active: bool) -> User:
    return update_user(db, actor, user_id, {"active": active})


def _reset_password(db: Session, actor: Subject, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    user.password_changed_at = clock.now()
    user.failed_logins = 0
    user.locked_until = None
    user.session_epoch += 1
    audit.record(db, actor, "reset_password", "user", user.id)


def reset_password(db: Session, actor: Subject, user_id: int, password: str) -> User:
    return update_user(db, actor, user_id, {"password": password})


def _unlock(db: Session, actor: Subject, user: User) -> None:
    before = {"failed_logins": user.failed_logins, "locked_until": user.locked_until}
    user.failed_logins = 0
    user.locked_until = None
    audit.record(db, actor, "unlock", "user", user.id,
                 detail=audit.diff(before, {"failed_logins": 0, "locked_until": None}))


def unlock(db: Session, actor: Subject, user_id: int) -> User:
    return update_user(db, actor, user_id, {"unlock": True})


def add_role(db: Session, actor: Subject, user_id: int, data: RoleIn) -> RoleAssignment:
    user = get_user(db, actor, user_id)
    if not actor.is_system_admin and any(r.role in ADMIN_LEVEL_ROLES for r in user.roles):
        raise Forbidden("您只能管理本机构的用户")
    if not scope.writable_institutions(actor) and not actor.is_system_admin:
        raise Forbidden("医联体管理员只能查看，不能修改")
    role, fields = _check_role(db, actor, data)
    if not fields and any((r.role, r.institution_id, r.alliance_id) == (role.role, role.institution_id,
                                                                          role.alliance_id) for r in user.roles):
        fields["role"] = "该用户已有此角色"
    if fields:
        raise InvalidInput(fields=fields)
    ra = RoleAssignment(user_id=user.id, role=role.role, institution_id=role.institution_id,
                        alliance_id=role.alliance_id)
    db.add(ra)
    db.flush()
    audit.record(db, actor, "grant_role", "user", user.id,
                 detail={"assignment_id": ra.id, "role": ra.role, "institution_id": ra.institution_id,
                         "alliance_id": ra.alliance_id})
    return ra


def remove_role(db: Session, actor: Subject, user_id: int, assignment_id: int) -> None:
    user = _managed(db, actor, user_id)
    ra = next((r for r in user.roles if r.id == assignment_id), None)
    if ra is None:
        raise NotFound()
    if ra.role in ADMIN_LEVEL_ROLES and not actor.is_system_admin:
        raise Forbidden()
    if ra.institution_id is not None and not scope.can_write(actor, ra.institution_id):
        raise Forbidden("您只能移除本机构的角色")
    if user.id == actor.user_id and ra.role in (Role.system_admin, Role.institution_admin):
        raise Conflict("不能移除自己的管理员角色")
    detail = {"assignment_id": ra.id, "role": ra.role, "institution_id": ra.institution_id,
              "alliance_id": ra.alliance_id}
    db.delete(ra)  # sessions re-read roles on every request: the change applies at once
    audit.record(db, actor, "revoke_role", "user", user.id, detail=detail)
    db.flush()


def issue_token(db: Session, actor: Subject, user_id: int, institution_id: int, name: str,
                days: int | None = 365) -> tuple[ApiToken, str]:
    """A bearer token for a member system acting as this user for one institution (shown once)."""
    _managed(db, actor, user_id)
    if not scope.can_write(actor, institution_id):
        raise Forbidden("您只能为本机构签发令牌")
    if not name.strip():
        raise InvalidInput(fields={"name": "请填写令牌用途（如对接的系统名称）"})
    return auth.issue_api_token(db, actor, user_id, institution_id, name, days)


def revoke_token(db: Session, actor: Subject, user_id: int, token_id: int) -> None:
    _managed(db, actor, user_id)
    row = kit.get(db, ApiToken, token_id)
    if row is None or row.user_id != user_id:
        raise NotFound()
    if not scope.can_write(actor, row.institution_id):
        raise Forbidden()
    auth.revoke_api_token(db, actor, token_id)


# ---------------------------------------------------------------- system clients (OAuth2, the FHIR API)


def system_clients(db: Session, actor: Subject) -> list[tuple[Any, str]]:
    """The clients of the institutions this administrator manages (a system administrator: all)."""
    writable = scope.writable_institutions(actor)
    return clients.clients_of(db, writable)


def register_client(db: Session, actor: Subject, institution_id: int | None, name: str, scope_text: str,
                    jwks: str | None, with_secret: bool) -> clients.Registered:
    """A system client of one of the administrator's institutions (auth/clients.register)."""
    if institution_id is None:
        raise InvalidInput(fields={"institution_id": "请选择机构"})
    if not scope.can_write(actor, institution_id):
        raise Forbidden("您只能为本机构登记客户端")
    return clients.register(db, actor, institution_id, name, scope_text, jwks, with_secret)


def revoke_client(db: Session, actor: Subject, pk: int) -> None:
    client = clients.client_by_pk(db, pk)
    if not scope.can_write(actor, client.institution_id):
        raise NotFound()
    clients.revoke(db, actor, client)


# ---------------------------------------------------------------- output


def role_out(r: RoleAssignment) -> dict[str, Any]:
    return {"id": r.id, "role": r.role, "institution_id": r.institution_id,
            "institution_name": r.institution.name if r.institution else None,
            "alliance_id": r.alliance_id, "alliance_name": r.alliance.name if r.alliance else None}


def user_out(u: User) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "display_name": u.display_name, "practitioner_id": u.practitioner_id,
            "active": u.active, "locked": auth.is_locked(u, clock.now()), "failed_logins": u.failed_logins,
            "last_login_at": u.last_login_at, "roles": [role_out(r) for r in sorted(u.roles, key=lambda r: r.id)]}


def me(db: Session, subject: Subject) -> dict[str, Any]:
    assignments = repo.assignments_of(db, subject.user_id)
    acting = None
    if subject.acting_institution_id:
        acting = {"id": subject.acting_institution_id, "name": subject.acting_institution_name or ""}
    return {
        "user_id": subject.user_id, "username": subject.username, "display_name": subject.display_name,
        "practitioner_id": subject.practitioner_id, "acting_institution": acting,
        "roles": sorted(subject.roles), "assignments": [role_out(r) for r in assignments],
        "institutions": [{"id": i.id, "name": i.name} for i in subject.institutions],
        "alliance_admin_of": sorted(subject.alliance_admin_of), "via_token": subject.via_token,
    }
