"""OAuth2 client credentials for member systems (SMART Backend Services): registered clients, the token endpoint's
rules, and the scopes an access token carries.

A client is registered for one institution with the scopes it may be granted and either its public keys (a JSON
Web Key Set: it then signs a client assertion with RS384 or ES384, `private_key_jwt`) or a client secret (shown
once). It acts as its own account, created with it: a coordinator of the institution, so the patient policy
(authz/policy.py) shows it that institution's patients and nothing else. An access token is an `api_token` row
with its `scope` set, good for ACCESS_SECONDS, and only on the FHIR API and SYSTEM_API_PATHS (auth/deps.resolve_subject).
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import repository as repo
from yilianti.auth.security import hash_password, new_api_token, token_hash
from yilianti.authz.subject import Subject
from yilianti.exceptions import AppError, Conflict, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import Institution
from yilianti.models.auth import ApiToken, ClientAssertion, Role, RoleAssignment, SystemClient, User

ACCESS_SECONDS = 300  # an access token's life: a backend asks again (SMART Backend Services suggests 5 minutes)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")  # what SMART Backend Services requires servers to take
MAX_ASSERTION_LIFE = timedelta(minutes=5)
CLIENT_ROLE = Role.coordinator  # the role its account holds at its institution
AUTH_METHODS = ("private_key_jwt", "client_secret_basic", "client_secret_post")
# system/<type or *>.<read | write | *> (SMART v1) or .<c r u d s letters> (SMART v2: r and s read, c u d write)
SCOPE = re.compile(r"system/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)")
SCOPES_SUPPORTED = ("system/*.read", "system/*.write", "system/Patient.read", "system/*.rs", "system/*.cruds")
# the JSON API routes a system client's access token may call besides the FHIR API, each checking the scopes itself:
# a member's HIS posting its encounters (`system/Encounter.write`, cockpit/encounters.py)
SYSTEM_API_PATHS = frozenset({"/api/v1/encounters"})


class OAuthError(AppError):
    """An OAuth2 error (RFC 6749 §5.2): its code is the `error` of the answer."""

    status, code, default_message = 400, "invalid_request", "令牌请求无效"


def _client_error(message: str = "客户端认证失败") -> OAuthError:
    return OAuthError(message, code="invalid_client", status=401)


# ---------------------------------------------------------------------------------------------------- scopes


def modes(scope: str) -> tuple[str, frozenset[str]] | None:
    """(resource type or '*', the modes it allows: read, write) of one scope; None when it is not a system scope."""
    m = SCOPE.fullmatch(scope)
    if m is None or not m.group(2):
        return None
    type_, access = m.groups()
    if access in ("read", "write"):
        return type_, frozenset({access})
    if access == "*":
        return type_, frozenset({"read", "write"})
    return type_, frozenset(({"read"} if set(access) & set("rs") else set()) |
                            ({"write"} if set(access) & set("cud") else set()))


def parse_scopes(text: str) -> list[str]:
    """The scopes of a space-separated list, each checked; InvalidInput names the first that is not one."""
    scopes = list(dict.fromkeys(text.split()))
    bad = [s for s in scopes if modes(s) is None]
    if bad or not scopes:
        raise InvalidInput(fields={"scope": "无效的权限范围" if bad else "请填写权限范围"})
    return scopes


def permits(scopes: frozenset[str] | None, resource_type: str, mode: str) -> bool:
    """Whether a subject's scopes allow `mode` (read, write) on the resource type; None: not a scoped client (the
    platform's own tokens and sessions), allowed as its roles say."""
    if scopes is None:
        return True
    for scope in scopes:
        parsed = modes(scope)
        if parsed and parsed[0] in ("*", resource_type) and mode in parsed[1]:
            return True
    return False


def granted(asked: str | None, registered: str) -> list[str]:
    """The scopes to grant: those asked for (all registered ones when none are) that a registered scope covers."""
    allowed = frozenset(registered.split())
    if not asked or not asked.strip():
        return sorted(allowed)
    out = []
    for scope in dict.fromkeys(asked.split()):
        parsed = modes(scope)
        if parsed is None:
            raise OAuthError("无效的权限范围：{bad}", code="invalid_scope", bad=scope[:80])
        type_, wanted = parsed
        if all(permits(allowed, type_, m) for m in wanted):
            out.append(scope)
    if not out:
        raise OAuthError("所请求的权限范围未授予该客户端", code="invalid_scope")
    return out


# ------------------------------------------------------------------------------------------------- registration


def _jwks(text: str | None) -> str | None:
    """The key set, checked: a JSON Web Key Set of public RSA or EC keys (a single key is taken as a set of one)."""
    if not text or not text.strip():
        return None
    try:
        data = json.loads(text)
        keys = data["keys"] if isinstance(data, dict) and "keys" in data else [data]
        if not isinstance(keys, list) or not keys:
            raise ValueError
        for key in keys:
            if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC") or "d" in key:
                raise ValueError
            jwt.PyJWK.from_dict(key, algorithm="RS384" if key["kty"] == "RSA" else "ES384")
    except (ValueError, KeyError, TypeError, jwt.PyJWTError):
        raise InvalidInput(fields={"jwks": "公钥须为 JSON Web Key Set（RSA 或 EC 公钥，不含私钥）"}) from None
    return json.dumps({"keys": keys}, ensure_ascii=False)


@dataclass(frozen=True)
class Registered:
    client: SystemClient
    secret: str | None  # shown once


def register(db: Session, actor: Subject | None, institution_id: int, name: str, scope: str,
             jwks: str | None = None, with_secret: bool = False) -> Registered:
    """A new client of the institution and its account; the permission to do it is the caller's to check."""
    fields: dict[str, str] = {}
    if not name.strip():
        fields["name"] = "请填写客户端名称（如对接的系统）"
    if kit.get(db, Institution, institution_id) is None:
        fields["institution_id"] = "机构不存在"
    try:
        scopes = parse_scopes(scope)
    except InvalidInput as exc:
        fields.update(exc.fields)
        scopes = []
    try:
        keys = _jwks(jwks)
    except InvalidInput as exc:
        fields.update(exc.fields)
        keys = None
    if not fields and keys is None and not with_secret:
        fields["jwks"] = "请提供公钥（JWKS）或生成客户端密钥"
    if fields:
        raise InvalidInput(fields=fields)
    client_id = "ylc_" + secrets.token_urlsafe(12)
    user = User(username=f"client-{client_id.lower()}"[:64], display_name=name.strip()[:64],
                password_hash=hash_password(secrets.token_urlsafe(32)), password_changed_at=clock.now())
    db.add(user)
    db.flush()
    db.add(RoleAssignment(user_id=user.id, role=CLIENT_ROLE, institution_id=institution_id))
    secret = secrets.token_urlsafe(32) if with_secret else None
    client = SystemClient(client_id=client_id, name=name.strip()[:100], institution_id=institution_id,
                          user_id=user.id, scope=" ".join(scopes), jwks=keys,
                          secret_hash=token_hash(secret) if secret else None)
    db.add(client)
    db.flush()
    audit.record(db, actor, "create", "system_client", client.id, channel=None if actor else "cli",
                 detail={"client_id": client_id, "institution_id": institution_id, "scope": client.scope,
                         "jwks": keys is not None, "secret": secret is not None})
    return Registered(client, secret)


def revoke(db: Session, actor: Subject | None, client: SystemClient) -> None:
    """The client can no longer get tokens; its account is closed, so the tokens it holds stop at once."""
    if client.revoked_at is not None:
        raise Conflict("该客户端已停用")
    now = clock.now()
    client.revoked_at = now
    user = kit.get(db, User, client.user_id)
    if user is not None:
        user.active = False
    for row in repo.live_tokens_of(db, client.user_id):
        row.revoked_at = now
    audit.record(db, actor, "revoke", "system_client", client.id, channel=None if actor else "cli",
                 detail={"client_id": client.client_id})


def clients_of(db: Session, institutions: set[int] | None) -> list[tuple[SystemClient, str]]:
    """The registered clients with their institution's name, of these institutions (None: all), newest first."""
    return repo.clients_with_names(db, institutions)


def client_by_pk(db: Session, pk: int) -> SystemClient:
    client = kit.get(db, SystemClient, pk)
    if client is None:
        raise NotFound()
    return client


# ------------------------------------------------------------------------------------------------ token endpoint


def _active_client(db: Session, client_id: str | None) -> SystemClient:
    client = repo.client_named(db, client_id) if client_id else None
    if client is None or client.revoked_at is not None:
        raise _client_error()
    return client


def _by_assertion(db: Session, assertion: str, token_url: str) -> SystemClient:
    """The client whose registered key signed the assertion (iss = sub = client_id, aud = the token endpoint,
    exp at most five minutes ahead, a jti not used before)."""
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _client_error("客户端断言不是有效的 JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise _client_error("客户端断言须以 RS384 或 ES384 签名")
    client = _active_client(db, claims.get("iss") if isinstance(claims.get("iss"), str) else None)
    if client.jwks is None:
        raise _client_error("该客户端未登记公钥")
    keys = [k for k in json.loads(client.jwks)["keys"] if not header.get("kid") or k.get("kid") == header["kid"]]
    for key in keys:
        try:
            verified = jwt.decode(assertion, jwt.PyJWK.from_dict(key, algorithm=header["alg"]),
                                  algorithms=[header["alg"]], audience=token_url, issuer=client.client_id,
                                  options={"require": ["exp", "jti", "sub", "aud", "iss"]}, leeway=30)
            break
        except jwt.PyJWTError:
            continue
    else:
        raise _client_error("客户端断言签名或声明无效")
    now = clock.now()
    if verified["sub"] != client.client_id or verified["exp"] > (now + MAX_ASSERTION_LIFE).timestamp() + 30:
        raise _client_error("客户端断言声明无效（sub 或 exp）")
    repo.delete_assertions_before(db, now)
    key = f"{client.client_id}:{str(verified['jti'])[:200]}"
    if repo.assertion_used(db, key):
        raise _client_error("客户端断言已使用过（jti 重复）")
    try:
        with db.begin_nested():
            db.add(ClientAssertion(key=key, expires_at=now + MAX_ASSERTION_LIFE + timedelta(minutes=1)))
    except IntegrityError:
        raise _client_error("客户端断言已使用过（jti 重复）") from None
    return client


def _by_secret(db: Session, client_id: str | None, secret: str | None) -> SystemClient:
    client = _active_client(db, client_id)
    if not secret or client.secret_hash is None or not hmac.compare_digest(client.secret_hash, token_hash(secret)):
        raise _client_error()
    return client


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """(client_id, secret) of an `Authorization: Basic` header (client_secret_basic), else (None, None)."""
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        client_id, _, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise _client_error() from None
    return client_id, secret


def issue_token(db: Session, form: dict[str, str], token_url: str, authorization: str | None = None,
                ip: str | None = None) -> dict[str, Any]:
    """The token endpoint: grant_type=client_credentials, the client authenticated by its assertion or secret;
    an access token with the scopes asked for (or all registered ones) that the client's registration covers."""
    if form.get("grant_type") != "client_credentials":
        raise OAuthError("仅支持 client_credentials 授权方式", code="unsupported_grant_type")
    basic_id, basic_secret = basic_credentials(authorization)
    if form.get("client_assertion"):
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("client_assertion_type 须为 jwt-bearer", code="invalid_request")
        client = _by_assertion(db, form["client_assertion"], token_url)
    else:
        client = _by_secret(db, basic_id or form.get("client_id"), basic_secret or form.get("client_secret"))
    scopes = granted(form.get("scope"), client.scope)
    now = clock.now()
    token, prefix, hashed = new_api_token()
    row = ApiToken(user_id=client.user_id, institution_id=client.institution_id, name=f"oauth {client.client_id}",
                   prefix=prefix, token_hash=hashed, scope=" ".join(scopes),
                   expires_at=now + timedelta(seconds=ACCESS_SECONDS))
    db.add(row)
    db.flush()
    audit.record(db, None, "token", "system_client", client.id, channel="api", username=f"client:{client.client_id}",
                 ip=ip, detail={"scope": row.scope, "token_id": row.id})
    return {"access_token": token, "token_type": "bearer", "expires_in": ACCESS_SECONDS, "scope": row.scope}


TOKEN_KEPT = timedelta(days=1)  # an expired access token's row stays this long (the audit trail names it)


def purge_tokens(db: Session) -> int:
    """The periodic job (auth/tasks.py): delete the access tokens that expired more than TOKEN_KEPT ago, of every
    client — also of those that never ask for a token again."""
    return repo.delete_scoped_tokens_before(db, clock.now() - TOKEN_KEPT)
