"""Who is acting on a hot path: the API token's or cookie session's subject, cached.

A lookup resolves through the ORM (auth.deps.resolve_subject) in a worker thread; the answer is kept
(fastdb/kept.py) for auth_cache_seconds, refreshed in the background under load, and one lookup per key runs
at a time.
"""

from __future__ import annotations

from fastapi import Request
from starlette.types import Scope

from yilianti.auth.deps import _bearer, csrf_protect, resolve_subject
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import AppError, Forbidden, Unauthenticated
from yilianti.fastdb.kept import Kept
from yilianti.fastdb.route import _sync

# ("token", token) or ("session", uid, sid, epoch, institution) → the subject, for auth_cache_seconds (a revoked
# token or ended session stops within that); a lookup that finds nobody, or raises, forgets the key
subjects: Kept[Subject] = Kept(lambda: get_settings().auth_cache_seconds, most=10000)


async def _token_subject(request: Request, token: str) -> Subject | None:
    """The subject of an API token, kept for auth_cache_seconds (fastdb/kept.py: refreshed in the background
    under load, one shared lookup per token when it has expired)."""
    return await subjects.get(("token", token), lambda: _sync(resolve_subject, request))


async def route_subject(scope: Scope, token: str) -> Subject | None:
    """The API token's subject for a FastRoute, or None when the regular route must answer (a token that
    does not resolve gets the route's own 401/403)."""
    try:
        return await _token_subject(Request(scope), token)
    except AppError:
        return None


def client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


async def subject_of(request: Request) -> Subject:
    await csrf_protect(request)
    token = _bearer(request)
    if token:
        subject = await _token_subject(request, token)
    else:
        key = ("session", request.session.get("uid"), request.session.get("sid"), request.session.get("epoch"),
               request.session.get("inst"))
        # resolved by the request itself, not shared nor refreshed in the background: the lookup writes to this
        # request's cookie session (clears an ended one, records the acting institution)
        subject = subjects.fresh(key)
        if subject is None:
            subject = await _sync(resolve_subject, request)
            if subject is not None:
                subjects.keep(key, subject)
    if subject is None:
        raise Unauthenticated()
    request.state.subject = subject
    if not subject.is_clinical:
        raise Forbidden("此功能仅限临床人员（医生、护士、诊断医师、转诊协调员）")
    return subject
