"""Login with lock-out, password change, account creation, API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import repository as auth_repo
from yilianti.auth.security import (
    dummy_hash,
    hash_password,
    new_api_token,
    new_session_id,
    token_hash,
    verify_password,
)
from yilianti.authz.subject import InstitutionChoice, Subject
from yilianti.config import get_settings
from yilianti.exceptions import Conflict, InvalidInput, NotFound, Unauthenticated
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.validate import Invalid
from yilianti.kit.validate import username as valid_username
from yilianti.models.alliance import Institution
from yilianti.models.auth import ApiToken, LoginSession, Role, RoleAssignment, User

BAD_CREDENTIALS = "用户名或密码不正确（连续失败 {failures} 次，账号将锁定 {minutes} 分钟）"


def _refused() -> Unauthenticated:
    """The one answer to every refused login — unknown user, wrong password, locked account — so that the
    answer does not tell which usernames exist (their cost is the same too: one password hash each)."""
    settings = get_settings()
    return Unauthenticated(BAD_CREDENTIALS, code="bad_credentials", failures=settings.login_max_failures,
                           minutes=settings.login_lockout_minutes)


def authenticate(db: Session, username: str, password: str, ip: str | None = None) -> User:
    settings = get_settings()
    name = username.strip().lower()
    user = auth_repo.user_named(db, name)
    now = clock.now()
    if user is None or not user.active:
        verify_password(password, dummy_hash())
        audit.record(db, None, "login_failed", "user", None, username=name[:64], ip=ip, channel="web")
        raise _refused()
    ok, new_hash = verify_password(password, user.password_hash)
    if user.locked_until and clock.as_utc(user.locked_until) > now:
        audit.record(db, None, "login_locked", "user", user.id, username=user.username, ip=ip, channel="web")
        raise _refused()
    if not ok:
        user.failed_logins += 1
        detail: dict[str, object] = {"failures": user.failed_logins}
        if user.failed_logins >= settings.login_max_failures:
            user.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
            user.failed_logins = 0
            detail["locked_until"] = user.locked_until.isoformat()
        audit.record(db, None, "login_failed", "user", user.id, username=user.username, ip=ip,
                     channel="web", detail=detail)
        raise _refused()
    if new_hash:
        user.password_hash = new_hash
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.record(db, None, "login", "user", user.id, username=user.username, ip=ip, channel="web")
    return user


def start_session(db: Session, user: User) -> str:
    """A new login session of the user: the id for the cookie (only its hash is stored)."""
    now = clock.now()
    session_id = new_session_id()
    auth_repo.delete_expired_sessions(db, user.id, now - timedelta(days=1))
    db.add(LoginSession(id=token_hash(session_id), user_id=user.id, created_at=now,
                        expires_at=now + timedelta(hours=get_settings().session_max_age_hours)))
    return session_id


def session_user(db: Session, user_id: int, session_id: str) -> User | None:
    """The user of a cookie's login session until it is logged out (None after). Its age is bounded by the
    cookie's signature (session_max_age_hours, checked by the session middleware); expires_at is kept for
    clearing old rows."""
    return auth_repo.session_user(db, user_id, token_hash(session_id))


def end_session(db: Session, subject: Subject, session_id: str | None) -> None:
    """Logout: the session ends on the server, so a copy of the cookie no longer signs anyone in."""
    row = auth_repo.login_session(db, token_hash(session_id)) if session_id else None
    if row is not None and row.ended_at is None:
        row.ended_at = clock.now()
    audit.record(db, subject, "logout", "user", subject.user_id)


def check_password_strength(password: str) -> None:
    settings = get_settings()
    if len(password) < settings.password_min_length:
        raise InvalidInput(fields={"password": "密码太短（至少8位）" if settings.password_min_length <= 8 else "密码太短"})
    if password.isdigit() or password.isalpha():
        raise InvalidInput(fields={"password": "密码需同时包含字母和数字"})


def change_password(db: Session, subject: Subject, current: str, new: str) -> None:
    user = kit.get(db, User, subject.user_id)
    if user is None:
        raise NotFound()
    if not verify_password(current, user.password_hash)[0]:
        raise InvalidInput(fields={"current_password": "当前密码不正确"})
    try:
        check_password_strength(new)
    except InvalidInput as exc:
        raise InvalidInput(fields={"new_password": exc.fields["password"]}) from None
    user.password_hash = hash_password(new)
    user.password_changed_at = clock.now()
    user.session_epoch += 1  # ends every other session of this user
    audit.record(db, subject, "password_change", "user", user.id)


def create_user(
    db: Session,
    actor: Subject | None,
    username: str,
    password: str,
    display_name: str,
    roles: list[tuple[str, int | None, int | None]],
    practitioner_id: int | None = None,
) -> User:
    fields: dict[str, str] = {}
    try:
        name = valid_username(username)
    except Invalid as exc:
        fields["username"] = exc.message
        name = username
    try:
        check_password_strength(password)
    except InvalidInput as exc:
        fields.update(exc.fields)
    if not display_name.strip():
        fields["display_name"] = "必填"
    for role, inst, _alliance in roles:
        if role not in Role.__members__:
            fields["role"] = "未知角色"
        if inst is not None and kit.get(db, Institution, inst) is None:
            fields["institution_id"] = "机构不存在"
    if not fields and auth_repo.user_id_named(db, name) is not None:
        fields["username"] = "用户名已存在"
    if fields:
        raise InvalidInput(fields=fields)
    user = User(username=name, display_name=display_name.strip(), password_hash=hash_password(password),
                practitioner_id=practitioner_id, password_changed_at=clock.now())
    db.add(user)
    db.flush()
    for role, inst, alliance in roles:
        db.add(RoleAssignment(user_id=user.id, role=role, institution_id=inst, alliance_id=alliance))
    db.flush()
    audit.record(db, actor, "create", "user", user.id, detail={"username": name, "roles": [list(r) for r in roles]},
                 channel=None if actor else "cli")
    return user


def build_subject(db: Session, user: User, acting_institution_id: int | None, *, via_token: bool = False,
                  ip: str | None = None) -> Subject:
    assignments = auth_repo.roles_with_institution_name(db, user.id)
    choices: dict[int, str] = {}
    for ra, inst_name in assignments:
        if ra.institution_id is not None:
            choices[ra.institution_id] = inst_name or ""  # set whenever the role has an institution
    if acting_institution_id not in choices:
        acting_institution_id = min(choices) if choices else None
        if user.practitioner_id and choices:
            # the default acting site is the practitioner's home institution
            home = auth_repo.home_institution_of(db, user.practitioner_id)
            if home in choices:
                acting_institution_id = home
    roles = {ra.role for ra, _ in assignments if ra.institution_id == acting_institution_id and ra.institution_id}
    roles |= {ra.role for ra, _ in assignments if ra.institution_id is None}
    return Subject(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        practitioner_id=user.practitioner_id,
        acting_institution_id=acting_institution_id,
        acting_institution_name=choices.get(acting_institution_id) if acting_institution_id else None,
        roles=frozenset(roles),
        alliance_admin_of=frozenset(
            ra.alliance_id for ra, _ in assignments if ra.role == Role.alliance_admin and ra.alliance_id
        ),
        institutions=tuple(InstitutionChoice(i, n) for i, n in sorted(choices.items())),
        via_token=via_token,
        all_roles=frozenset(ra.role for ra, _ in assignments),
        ip=ip,
        auditor_of_alliances=frozenset(
            ra.alliance_id for ra, _ in assignments if ra.role == Role.auditor and ra.alliance_id
        ),
        platform_auditor=any(ra.role == Role.auditor and ra.institution_id is None and ra.alliance_id is None
                             for ra, _ in assignments),
    )


def issue_api_token(db: Session, actor: Subject, user_id: int, institution_id: int, name: str,
                    days: int | None = 365) -> tuple[ApiToken, str]:
    user = kit.get(db, User, user_id)
    if user is None:
        raise NotFound()
    if not auth_repo.has_role_at(db, user_id, institution_id):
        raise InvalidInput(fields={"institution_id": "该用户在此机构没有角色"})
    token, prefix, hashed = new_api_token()
    row = ApiToken(user_id=user_id, institution_id=institution_id, name=name.strip() or "api", prefix=prefix,
                   token_hash=hashed, expires_at=clock.now() + timedelta(days=days) if days else None)
    db.add(row)
    db.flush()
    audit.record(db, actor, "create", "api_token", row.id, detail={"user_id": user_id, "name": row.name})
    return row, token


def resolve_api_token(db: Session, token: str) -> tuple[User, ApiToken]:
    row = auth_repo.token_with_hash(db, token_hash(token))
    now = clock.now()
    if row is None or row.revoked_at is not None or (row.expires_at and clock.as_utc(row.expires_at) <= now):
        raise Unauthenticated("API 令牌无效或已过期", code="bad_token")
    user = kit.get(db, User, row.user_id)
    if user is None or not user.active:
        raise Unauthenticated("API 令牌无效或已过期", code="bad_token")
    if row.last_used_at is None or (now - clock.as_utc(row.last_used_at)) > timedelta(minutes=5):
        _touch_token(db, row, now)
    return user, row


_touched: dict[int, datetime] = {}


def _touch_token(db: Session, row: ApiToken, now: datetime) -> None:
    """Record last use at most every 5 minutes per process, never inside the request's transaction.

    Every request of a member system uses the same token row: updating it in the request's
    own transaction would queue all concurrent requests behind one row lock. On PostgreSQL it
    is a short separate transaction that skips the row if another worker is already touching
    it; SQLite has a single writer anyway, so it stays in the request's transaction there.
    """
    last = _touched.get(row.id)
    if last is not None and now - last < timedelta(minutes=5):
        return
    _touched[row.id] = now
    bind = db.get_bind()
    if bind.dialect.name != "postgresql" or not isinstance(bind, Engine):
        row.last_used_at = now
        return
    with bind.connect() as conn:
        auth_repo.touch_token(conn, row.id, now)


def revoke_api_token(db: Session, actor: Subject, token_id: int) -> None:
    row = kit.get(db, ApiToken, token_id)
    if row is None:
        raise NotFound()
    if row.revoked_at is not None:
        raise Conflict("令牌已被吊销")
    row.revoked_at = clock.now()
    audit.record(db, actor, "revoke", "api_token", row.id)


def is_locked(user: User, at: datetime) -> bool:
    return bool(user.locked_until and clock.as_utc(user.locked_until) > at)
