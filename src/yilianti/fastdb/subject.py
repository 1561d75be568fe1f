"""Who is acting on a hot path: the API token's or cookie session's subject, cached.

A lookup resolves through the ORM (auth.deps.resolve_subject) in a worker thread; the answer is
kept for auth_cache_seconds, refreshed in the background under load, and one lookup per token runs
at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import Request
from starlette.types import Scope

from yilianti.auth.deps import _bearer, csrf_protect, resolve_subject
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import AppError, Forbidden, Unauthenticated
from yilianti.fastdb.route import _sync

_cache: dict[Any, tuple[float, Any]] = {}
_pending: dict[Any, asyncio.Future[Any]] = {}
_background: set[asyncio.Future[Any]] = set()
log = logging.getLogger("yilianti")


def _cached(key: Any) -> Any:
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


def _remember(key: Any, value: Any, ttl: float) -> Any:
    if len(_cache) > 10000:
        _cache.clear()
    _cache[key] = (time.monotonic() + ttl, value)
    return value


async def _token_subject(request: Request, token: str) -> Subject | None:
    """The subject of an API token, cached for auth_cache_seconds (a revoked token stops within that).

    Under load the entry is refreshed in the background once half its time is gone, so requests
    never queue behind the lookup; when it has expired, requests wait for one shared lookup.
    """
    key = ("token", token)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        if hit[0] - now < get_settings().auth_cache_seconds / 2 and key not in _pending:
            task = asyncio.ensure_future(_resolve(key, request))
            _background.add(task)
            task.add_done_callback(_refreshed)
        subject: Subject | None = hit[1]
        return subject
    return await _resolve(key, request)


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


def _refreshed(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    exc = None if task.cancelled() else task.exception()
    if exc is not None and not isinstance(exc, AppError):  # a revoked token is not worth a warning
        log.warning("refreshing an API token's subject failed: %r", exc)


async def _resolve(key: Any, request: Request) -> Subject | None:
    # one lookup per token at a time: when the entry expires under load, hundreds of requests
    # would otherwise each take a worker thread and a pooled connection to resolve the same token
    pending = _pending.get(key)
    if pending is not None:
        result: Subject | None = await asyncio.shield(pending)
        return result
    future: asyncio.Future[Subject | None] = asyncio.get_running_loop().create_future()
    _pending[key] = future
    try:
        subject = await _sync(resolve_subject, request)
        if subject is not None:
            _remember(key, subject, get_settings().auth_cache_seconds)
        future.set_result(subject)
    except BaseException as exc:
        _cache.pop(key, None)  # revoked or expired: nobody keeps using the old subject
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
        raise
    finally:
        _pending.pop(key, None)
    return subject


async def subject_of(request: Request) -> Subject:
    await csrf_protect(request)
    token = _bearer(request)
    if token:
        subject = await _token_subject(request, token)
    else:
        key = ("session", request.session.get("uid"), request.session.get("sid"), request.session.get("epoch"),
               request.session.get("inst"))
        subject = _cached(key)
        if subject is None:
            subject = await _sync(resolve_subject, request)
            if subject is not None:
                _remember(key, subject, get_settings().auth_cache_seconds)
    if subject is None:
        raise Unauthenticated()
    request.state.subject = subject
    if not subject.is_clinical:
        raise Forbidden("此功能仅限临床人员（医生、护士、诊断医师、转诊协调员）")
    return subject
