"""The hot path of referral moves on PostgreSQL: one prepared statement per move, on asyncpg.

`service.transition` is the reference implementation (and the only one on SQLite). Moves that
are nothing but `transition` — `received` and `arrived`, which `apply_move` sends straight to it —
run here as ONE data-modifying statement, its own transaction (autocommit):

- the referral row is updated only when its status is the client's `expected_status` (the declared
  move, `states.MOVES`, allows it) and the acting institution is on an allowed side: the
  conditional UPDATE is the race guard — a client that waited for a racing move re-checks the
  condition on the committed version (READ COMMITTED), so exactly one racing client wins. No
  separate `FOR UPDATE`: the update's own row lock serialises the movers, and a lock before it
  would write the row twice;
- from the updated row: the history row, the audit row (`referral.<status>`, detail from/to) and
  the outbox notification to the other side — the rows `transition` writes, in the same
  transaction; the response carries the referral's history as the route's does.

When nothing is updated, the row as the statement saw it says why: no such referral or an
institution on neither side (404), another current status (409 `referral_state_conflict`, naming
it), the wrong side (403) — the reference's answers, in its order. When that row would have moved,
a racing move committed in between: one more read gives the status to name in the 409. Nothing is
written then.

`ReferralMoveRoute` serves `POST /api/v1/referrals/{id}/transition` with an API token before
the framework's middleware; what it cannot decide (no bearer token, other moves, a body the
schema rejects, a token that does not resolve, a subject the route would refuse, a move the table
does not declare from `expected_status`, a failed statement) goes to the regular route with the
body replayed, which runs the reference. Only the acting subject is cached (auth_cache_seconds).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
from pydantic import ValidationError
from starlette.types import Scope

from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import AppError, Conflict, Forbidden, NotFound
from yilianti.fastdb import FastRoute, client_ip, connection, on_postgresql, route_subject
from yilianti.kit import clock
from yilianti.referral import states
from yilianti.referral.service import ACTING_ROLES, STATE_CONFLICT
from yilianti.referral.states import STATUS_LABELS, Side, Status

PATH = re.compile(r"/api/v1/referrals/([1-9][0-9]{0,17})/transition")
# the moves apply_move sends to service.transition and nothing else (no reason, grants or extra columns)
FAST_MOVES = frozenset({Status.received, Status.arrived})
PRIORITIES = ("routine", "urgent", "emergency")
stats: Counter[str] = Counter()  # moved by the "statement" / "refused" by it / handed to the route ("fallback")
__all__ = ["FAST_MOVES", "ReferralMoveRoute", "enabled", "move", "stats"]


def enabled() -> bool:
    return get_settings().referral_fast_path and on_postgresql()


_REFERRAL = ("id, direction, linked_referral_id, patient_id, from_institution_id, to_institution_id, "
             "to_department_id, to_practitioner_id, reason, priority, target_service, permanent, summary, "
             "follow_up_plan, status, due_at, booking_id, bed_reservation_id, reject_code, reject_comment, "
             "outcome_note, forwarded_to_id, submitted_at, created_at")
_HISTORY = "id, at, user_id, acting_institution_id, from_status, to_status, reason, detail"

# $1 referral, $2 to status, $3 acting institution, $4 expected status, $5 now, $6 sides allowed,
# $7/$8/$9 the step deadline for routine/urgent/emergency (NULL: none), $10 user, $11 username,
# $12 audit detail (json), $13 ip, $14 channel
_SIDE = ("CASE WHEN {t}from_institution_id = $3::bigint THEN 'sender' "
         "WHEN {t}to_institution_id = $3::bigint THEN 'receiver' END")
MOVE = f"""
WITH cur AS (
  SELECT status, {_SIDE.format(t='')} AS side FROM referral WHERE id = $1::bigint
),
u AS (
  UPDATE referral r SET status = $2::text, updated_at = $5::timestamptz,
         due_at = $5::timestamptz + CASE r.priority WHEN 'urgent' THEN $8::interval
                                                     WHEN 'emergency' THEN $9::interval ELSE $7::interval END
  WHERE r.id = $1::bigint AND r.status = $4::text AND {_SIDE.format(t='r.')} = ANY($6::text[])
  RETURNING {", ".join("r." + c.strip() for c in _REFERRAL.split(","))}, {_SIDE.format(t='r.')} AS moved_side
),
h AS (
  INSERT INTO referral_history (referral_id, at, user_id, acting_institution_id, from_status, to_status, reason,
                                detail)
  SELECT u.id, $5::timestamptz, $10::bigint, $3::bigint, $4::text, $2::text, NULL, NULL FROM u
  RETURNING {_HISTORY}
),
a AS (
  INSERT INTO audit_event (at, user_id, username, acting_institution_id, action, resource_type, resource_id,
                           patient_id, access_basis, reason, detail, ip, channel)
  SELECT $5::timestamptz, $10::bigint, $11::text, $3::bigint, 'referral.' || $2::text, 'referral', u.id::text,
         u.patient_id, NULL, NULL, $12::json, $13::text, $14::text FROM u
  RETURNING id
),
o AS (
  INSERT INTO outbox (topic, payload, status, available_at, attempts, last_error, processed_at, dedupe_key,
                      created_at)
  SELECT 'notify',
         json_build_object('title', 'referral.notify.' || $2::text, 'body', NULL, 'link', '/referrals/' || u.id,
                           'user_id', NULL,
                           'institution_id', CASE WHEN u.moved_side = 'sender' THEN u.to_institution_id
                                                  ELSE u.from_institution_id END,
                           'kind', 'referral', 'urgent', u.priority = 'emergency',
                           'params', json_build_object('id', u.id, 'reason', '')),
         'pending', $5::timestamptz, 0, NULL, NULL, NULL, $5::timestamptz
  FROM u
  RETURNING id
)
SELECT cur.status AS current, coalesce(u.moved_side, cur.side) AS side,
       (SELECT count(*) FROM a) + (SELECT count(*) FROM o) AS written,
       (SELECT json_agg(x ORDER BY x.at, x.id) FROM (
          SELECT {_HISTORY} FROM referral_history WHERE referral_id = $1::bigint AND EXISTS (SELECT 1 FROM u)
          UNION ALL SELECT {_HISTORY} FROM h) x) AS history,
       u.*
FROM (SELECT 1) one LEFT JOIN cur ON true LEFT JOIN u ON true
"""
# the current status after a lost race (a move committed after the statement's snapshot)
CURRENT = "SELECT status FROM referral WHERE id = $1::bigint"


def _deadlines(to_status: str) -> list[timedelta | None]:
    return [states.step_deadline(to_status, p) for p in PRIORITIES]


async def move(subject: Subject, referral_id: int, to_status: Status, expected_status: Status,
               ip: str | None) -> dict[str, Any] | AppError | None:
    """Make the move in one statement. Returns the referral detail the route returns; or the error
    the reference raises (404/409/403, decided from the locked row); or None: the route decides."""
    sides = states.allowed(expected_status, to_status)
    if to_status not in FAST_MOVES or sides is None or not subject.is_clinical or not subject.has(*ACTING_ROLES):
        return None
    now = clock.now()
    args = [referral_id, to_status.value, subject.acting_institution_id, expected_status.value, now,
            sorted(s.value for s in sides), *_deadlines(to_status), subject.user_id, subject.username,
            json.dumps({"from": expected_status.value, "to": to_status.value}), ip, subject.channel]
    async with connection() as conn:  # Busy when every connection stays busy: nothing written, 503
        row = await conn.fetchrow(MOVE, *args)
        current = row["current"] if row is not None else None
        if (row is not None and row["id"] is None and row["side"] is not None and Side(row["side"]) in sides
                and current == expected_status):
            # the snapshot would have moved, the update did not: a racing move committed in between
            current = await conn.fetchval(CURRENT, referral_id)
    if row is None or row["side"] is None or current is None:
        return NotFound()  # no such referral, or the acting institution is on neither side
    if row["id"] is None:
        if current != expected_status or states.allowed(current, to_status) is None:
            return Conflict("转诊单当前状态为“{current}”，不能执行该操作，请刷新后重试", code=STATE_CONFLICT,
                            current=STATUS_LABELS.get(Status(current), current))
        if Side(row["side"]) not in sides:
            return Forbidden("该操作应由转诊的另一方执行")
        return None  # not expected: the reference decides
    side = Side(row["side"])
    out = {k: v for k, v in row.items() if k not in ("current", "side", "moved_side", "written", "history")}
    for k in ("summary", "follow_up_plan"):
        if isinstance(out[k], str):
            out[k] = json.loads(out[k])
    out["side"] = side.value
    out["next_moves"] = [m.value for m in states.next_moves(out["status"], side)]
    out["history"] = json.loads(row["history"]) if row["history"] else []
    return out


class ReferralMoveRoute(FastRoute):
    """Pure ASGI: `POST /api/v1/referrals/{id}/transition` with a bearer token, served without the
    framework stack for the moves in FAST_MOVES. Anything else goes to the app unchanged (the body
    replayed), so errors, cookie sessions and OpenAPI stay the route's."""

    stats = stats

    def claim(self, scope: Scope) -> Any:
        if not scope["path"].endswith("/transition"):
            return None
        match = PATH.fullmatch(scope["path"])
        return int(match.group(1)) if match is not None and enabled() else None

    async def serve(self, scope: Scope, token: str, claimed: Any, body: bytes) -> dict[str, Any] | AppError | None:
        return await self._move(scope, token, claimed, body)

    def dump(self, out: dict[str, Any]) -> bytes:
        return _dump(out)

    async def _move(self, scope: Scope, token: str, referral_id: int,
                    raw: bytes) -> dict[str, Any] | AppError | None:
        from yilianti.referral.api import TransitionIn

        try:
            data = TransitionIn.model_validate_json(raw)
        except ValidationError:
            return None
        if data.to_status not in FAST_MOVES:
            return None
        subject = await route_subject(scope, token)
        if subject is None:
            return None
        try:
            return await move(subject, referral_id, data.to_status, data.expected_status,
                              client_ip(scope))
        except asyncpg.PostgresError:
            return None  # the statement failed as a whole: nothing was written, the route decides


_out_model: Any = None


def _dump(out: dict[str, Any]) -> bytes:
    """Serialise as the route's response model does."""
    global _out_model
    if _out_model is None:
        from yilianti.referral.api import ReferralDetail

        _out_model = ReferralDetail
    return _out_model.model_validate(out).model_dump_json().encode()
