"""FastAPI dependencies: the database unit of work, the acting subject, role checks, CSRF."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from yilianti.auth import clients, service
from yilianti.authz.subject import Subject
from yilianti.db import get_db, read_session
from yilianti.exceptions import AppError, Forbidden, Unauthenticated
from yilianti.kit.paths import is_fhir_path
from yilianti.notifications import repository as notifications

DB = Annotated[Session, Depends(get_db, scope="function")]


def get_read_db(db: DB) -> Iterator[Session]:
    """The session of a page's heavy reads (the cockpit's figures): the read replica when set and fresh enough
    (YILIANTI_READ_REPLICA_URL), else the request's own session. Writes and audit rows go through `DB`."""
    with read_session(db) as session:
        yield session


ReadDB = Annotated[Session, Depends(get_read_db, scope="function")]
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CsrfFailed(AppError):
    status, code, default_message = 403, "csrf_failed", "页面已过期，请刷新后重试"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


async def csrf_protect(request: Request) -> None:
    """Every state-changing request made with the session cookie carries the session's token."""
    if request.method not in UNSAFE or _bearer(request):
        return
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise CsrfFailed()


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def resolve_subject(db: Session, request: Request) -> Subject | None:
    """Who is acting: an API token, or the session cookie (CSRF is checked separately)."""
    token = _bearer(request)
    if token:
        user, row = service.resolve_api_token(db, token)
        subject = service.build_subject(db, user, row.institution_id, via_token=True, ip=_client_ip(request))
        if subject.acting_institution_id != row.institution_id:
            raise Unauthenticated("API 令牌无效或已过期", code="bad_token")
        if row.scope is not None:  # a system client's access token: the FHIR API (and a few routes), within its scopes
            if not is_fhir_path(request.url.path) and request.url.path not in clients.SYSTEM_API_PATHS:
                raise Unauthenticated("该访问令牌仅可用于 FHIR 接口", code="bad_token")
            subject = replace(subject, scopes=frozenset(row.scope.split()))
        request.state.subject = subject
        return subject
    uid, sid = request.session.get("uid"), request.session.get("sid")
    if not uid or not isinstance(sid, str):
        return None
    session_user = service.session_user(db, uid, sid)
    if session_user is None or not session_user.active or request.session.get("epoch") != session_user.session_epoch:
        request.session.clear()
        return None
    subject = service.build_subject(db, session_user, request.session.get("inst"), ip=_client_ip(request))
    request.session["inst"] = subject.acting_institution_id
    request.state.subject = subject
    return subject


def optional_subject(request: Request, db: DB, _csrf: None = Depends(csrf_protect)) -> Subject | None:
    subject = resolve_subject(db, request)
    if subject is None or subject.via_token:
        return subject
    request.state.unread = notifications.unread_count(db, subject)
    return subject


def current_subject(subject: Annotated[Subject | None, Depends(optional_subject)]) -> Subject:
    if subject is None:
        raise Unauthenticated()
    return subject


CurrentSubject = Annotated[Subject, Depends(current_subject)]


def require(*roles: str) -> Callable[[Subject], Subject]:
    """Route-level role check (the resource check comes after, in the service)."""

    def _check(subject: CurrentSubject) -> Subject:
        if not subject.has(*roles) and not subject.is_system_admin:
            raise Forbidden()
        return subject

    return _check


def require_clinical(subject: CurrentSubject) -> Subject:
    if not subject.is_clinical:
        raise Forbidden("此功能仅限临床人员（医生、护士、诊断医师、转诊协调员）")
    return subject


Clinical = Annotated[Subject, Depends(require_clinical)]
