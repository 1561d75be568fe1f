"""The cached fast path of `GET /api/v1/cockpit/figures` with an API token (B5: 50 wall screens and member
systems asking the same charts).

The answer is the route's own, in its two parts, each computed in a worker thread and kept per process:

- the access check (`service.require_view`) per token and alliance, for `auth_cache_seconds` — the delay the hot
  paths already allow for a revoked token or a changed role (fastdb/subject.py);
- the figures (`service.figures_of_alliance`: the filters, the figures from the daily rollups), as the bytes sent,
  per query, for `service.CACHE_SECONDS` — as long as `compute_cached` keeps them anyway.

Once half its time has gone an entry is recomputed in the background while it is still served, and one
computation per entry runs at a time, so a viewer never waits for the database except for the first question of
its kind. What it does not answer goes to the regular route unchanged: no bearer token, a query the route's
validation would judge (a repeated or unknown parameter, an alliance id that is not an id), a token that does not
resolve, and every refusal or error (the route answers it, as before).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Scope

from yilianti.cockpit import service
from yilianti.config import get_settings
from yilianti.exceptions import AppError
from yilianti.fastdb.kept import Kept
from yilianti.fastdb.route import FastRoute, _sync
from yilianti.fastdb.subject import route_subject
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.schemas import parse_id
from yilianti.models.alliance import Alliance

PATH = "/api/v1/cockpit/figures"
PARAMS = frozenset({"alliance_id", "start", "end", "member", "department", "codes"})
MAX_ENTRIES = 5000
stats: Counter[str] = Counter()  # "statement": answered here; "fallback": left to the route
log = logging.getLogger("yilianti")


def enabled() -> bool:
    return get_settings().cockpit_fast_path


def _query(scope: Scope) -> dict[str, str] | None:
    """The query's parameters when the route would take them as they are (each known one at most once, the
    alliance an id); None: the route judges them."""
    try:
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True,
                          strict_parsing=True)
    except (ValueError, UnicodeDecodeError):
        return None
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= PARAMS or "alliance_id" not in params \
            or any(len(v) > 2000 for v in params.values()):
        return None
    return params if parse_id(params["alliance_id"].strip()) is not None else None

async def _answer(compute: Callable[[], Awaitable[Any]]) -> Any:
    """The computation's answer, or None when the route is to answer instead: refused or invalid now (the route
    says so), or failed (503 on a timeout, as before; the log says why). None is not kept (fastdb/kept.py)."""
    try:
        return await compute()
    except AppError:
        return None
    except Exception:  # noqa: BLE001
        log.warning("cockpit figures fast path failed; the route answers", exc_info=True)
        return None


access: Kept[Alliance] = Kept(lambda: get_settings().auth_cache_seconds, most=MAX_ENTRIES)  # (token, alliance) → it
figures: Kept[bytes] = Kept(lambda: service.CACHE_SECONDS, most=MAX_ENTRIES)  # (query, today) → the body


def _allowed(db: Any, subject: Any, alliance_id: int) -> Alliance:
    alliance = service.require_view(db, subject, kit.get(db, Alliance, alliance_id))
    db.expunge(alliance)
    return alliance


def _body(db: Any, alliance: Alliance, params: dict[str, str]) -> bytes:
    return service.figures_of_alliance(db, alliance, params.get("start", ""), params.get("end", ""),
                                       params.get("member", ""), params.get("department", ""),
                                       params.get("codes", "")).model_dump_json().encode()


class FiguresRoute(FastRoute):
    """Pure ASGI: `GET /api/v1/cockpit/figures` with a bearer token, served before the framework stack."""

    method = "GET"
    stats = stats

    def claim(self, scope: Scope) -> Any:
        return True if scope["path"] == PATH and enabled() else None

    def dump(self, out: dict[str, Any]) -> bytes:
        body: bytes = out["body"]
        return body

    async def serve(self, scope: Scope, token: str, claimed: Any, body: bytes) -> dict[str, Any] | AppError | None:
        params = _query(scope)
        if params is None:
            return None
        subject = await route_subject(scope, token)
        if subject is None:
            return None
        alliance_id = int(parse_id(params["alliance_id"].strip()) or 0)
        alliance = await access.get((token, alliance_id), lambda: _answer(lambda: _sync(_allowed, subject, alliance_id)))
        if alliance is None:
            return None
        sent = await figures.get((tuple(sorted(params.items())), clock.today_local()),
                                 lambda: _answer(lambda: _sync(_body, alliance, params)))
        return None if sent is None else {"body": sent}


def clear() -> None:
    """Forget every kept answer (tests; a process that must show a change at once)."""
    access.clear()
    figures.clear()
