"""The hot path of referral moves on PostgreSQL: one prepared statement per batch of moves, on asyncpg.

`service.transition` is the reference implementation (and the only one on SQLite). Moves that
are nothing but `transition` — `received` and `arrived`, which `apply_move` sends straight to it —
run here as ONE data-modifying statement, its own transaction (autocommit), for every move that
arrived together (`_Mover`, a `fastdb.GroupCommit`: one referral per statement; a statement that
fails as a whole is run again move by move). For each move, on its own row:

- the referral row is updated only when its status is the client's `expected_status` (the declared
  move, `states.MOVES`, allows it) and the acting institution is on an allowed side: the
  conditional UPDATE is the race guard — a client that waited for a racing move re-checks the
  condition on the committed version (READ COMMITTED), so exactly one racing client wins. No
  separate `FOR UPDATE`: the update's own row lock serialises the movers, and a lock before it
  would write the row twice;
- from the updated row: the history row, the audit row (`referral.<status>`, detail from/to) and
  the outbox notification to the other side — the rows `transition` writes, in the same
  transaction (the history row and the notification are `transition`'s own builders,
  `WORKFLOW.history_row` and `service.notice`, compiled into the statement at import time);
  the response carries the referral's history as the route's does.

When nothing is updated, the row as the statement saw it says why: no such referral or an
institution on neither side (404), another current status (409 `referral_state_conflict`, naming
it), the wrong side (403) — the reference's answers, in its order. When that row would have moved,
a racing move committed in between: one more read (for all such moves of the statement) gives the
status to name in the 409. Nothing is written then.

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
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
from pydantic import ValidationError
from sqlalchemy import Text, case
from starlette.types import Scope

from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import AppError, Conflict, Forbidden, NotFound
from yilianti.fastdb.group import GroupCommit, group
from yilianti.fastdb.pool import on_postgresql
from yilianti.fastdb.route import FastRoute
from yilianti.fastdb.subject import client_ip, route_subject
from yilianti.kit import clock
from yilianti.kit.schemas import parse_id
from yilianti.kit.sqlcompile import column, sql, sql_insert, sql_json
from yilianti.kit.workflow import move_detail
from yilianti.referral import service, states
from yilianti.referral.schemas import ReferralDetail, TransitionIn
from yilianti.referral.service import ACTING_ROLES, STATE_CONFLICT
from yilianti.referral.states import STATUS_LABELS, Side, Status
from yilianti.scheduling.rules import booked_day_reached

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

# One element per move: $1 referrals, $2 to statuses, $3 acting institutions, $4 expected statuses, $6 sides
# allowed (comma-separated), $7/$8/$9 the step deadlines for routine/urgent/emergency (NULL: none), $10 users,
# $11 usernames, $12 audit details (json), $13 ips, $14 channels; for the whole statement $5 now and $15
# today (the local date: the booked day's rule).
# Every row of `r` is one move, decided on its own (one referral per statement: fastdb.GroupCommit's key).
_SIDE = (f"CASE WHEN {{t}}from_institution_id = r.inst THEN {sql(Side.sender)} "
         f"WHEN {{t}}to_institution_id = r.inst THEN {sql(Side.receiver)} END")
# The history row and the notification are the reference's builders (service.WORKFLOW.history_row,
# service.notice), compiled here over the statement's columns: `u` the moved referral, `r` the move.
_U = SimpleNamespace(id=column("u.id"), priority=column("u.priority"))
_HISTORY_COLUMNS, _HISTORY_VALUES = sql_insert(service.WORKFLOW.history_row(
    column("u.id"), at=column("$5::timestamptz"), user_id=column("r.user_id"), institution_id=column("r.inst"),
    from_status=column("r.expected"), to_status=column("r.to_status")))
_NOTICE = sql_json(service.notice(
    column("r.to_status", Text), _U, None,
    case((column("u.moved_side") == Side.sender.value, column("u.to_institution_id")),
         else_=column("u.from_institution_id"))))
# an arrival before the booked day needs a reason (scheduling.rules, one clause): not moved here, the route asks
_BOOKED_DAY_REACHED = sql(booked_day_reached(column("x.booking_id"), column("$15::date")))
MOVE = f"""
WITH r AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $6::text[], $7::interval[],
                       $8::interval[], $9::interval[], $10::bigint[], $11::text[], $12::text[], $13::text[],
                       $14::text[]) WITH ORDINALITY
    AS r(id, to_status, inst, expected, sides, d_routine, d_urgent, d_emergency, user_id, username, detail, ip,
         channel, i)
),
cur AS (
  SELECT r.i, x.status, {_SIDE.format(t='x.')} AS side FROM r JOIN referral x ON x.id = r.id
),
u AS (
  UPDATE referral x SET status = r.to_status, updated_at = $5::timestamptz,
         due_at = $5::timestamptz + CASE x.priority WHEN 'urgent' THEN r.d_urgent
                                                     WHEN 'emergency' THEN r.d_emergency ELSE r.d_routine END
  FROM r
  WHERE x.id = r.id AND x.status = r.expected AND {_SIDE.format(t='x.')} = ANY(string_to_array(r.sides, ','))
    AND (r.to_status <> {sql(Status.arrived)} OR {_BOOKED_DAY_REACHED})
  RETURNING r.i, {", ".join("x." + c.strip() for c in _REFERRAL.split(","))}, {_SIDE.format(t='x.')} AS moved_side
),
h AS (
  INSERT INTO referral_history ({_HISTORY_COLUMNS})
  SELECT {_HISTORY_VALUES} FROM u JOIN r ON r.i = u.i
  RETURNING referral_id, {_HISTORY}
),
a AS (
  INSERT INTO audit_event (at, user_id, username, acting_institution_id, action, resource_type, resource_id,
                           patient_id, access_basis, reason, detail, ip, channel)
  SELECT $5::timestamptz, r.user_id, r.username, r.inst, 'referral.' || r.to_status, 'referral', u.id::text,
         u.patient_id, NULL, NULL, r.detail::json, r.ip, r.channel FROM u JOIN r ON r.i = u.i
),
o AS (
  INSERT INTO outbox (topic, payload, status, available_at, attempts, last_error, processed_at, dedupe_key,
                      created_at)
  SELECT 'notify', {_NOTICE}, 'pending', $5::timestamptz, 0, NULL, NULL, NULL, $5::timestamptz
  FROM u JOIN r ON r.i = u.i
)
SELECT r.i AS ask, cur.status AS current, coalesce(u.moved_side, cur.side) AS side,
       (SELECT json_agg(x ORDER BY x.at, x.id) FROM (
          SELECT {_HISTORY} FROM referral_history WHERE referral_id = r.id AND u.id IS NOT NULL
          UNION ALL SELECT {_HISTORY} FROM h WHERE h.referral_id = r.id) x) AS history,
       u.*
FROM r LEFT JOIN cur ON cur.i = r.i LEFT JOIN u ON u.i = r.i
"""
# the current statuses after lost races (moves committed after the statement's snapshot)
CURRENT = "SELECT id, status FROM referral WHERE id = ANY($1::bigint[])"


def _deadlines(to_status: str) -> list[timedelta | None]:
    return [states.step_deadline(to_status, p) for p in PRIORITIES]


@dataclass(frozen=True)
class _Ask:
    """One move for the next statement."""

    referral_id: int
    to_status: Status
    expected_status: Status
    sides: frozenset[Side]
    institution_id: int | None
    user_id: int | None
    username: str
    ip: str | None
    channel: str


class _Mover(GroupCommit[_Ask]):
    """The moves of one process, grouped (fastdb.GroupCommit): one referral per statement. Each answer is
    the move's row of MOVE and, when the snapshot would have moved but the update did not (a racing move
    committed in between), the status read after the statement."""

    def key(self, item: _Ask) -> Any:
        return item.referral_id

    async def execute(self, conn: Any, items: list[_Ask]) -> list[Any]:
        deadlines = [_deadlines(a.to_status) for a in items]
        rows = {row["ask"]: row for row in await conn.fetch(
            MOVE, [a.referral_id for a in items], [a.to_status.value for a in items],
            [a.institution_id for a in items], [a.expected_status.value for a in items], clock.now(),
            [",".join(sorted(s.value for s in a.sides)) for a in items], [d[0] for d in deadlines],
            [d[1] for d in deadlines], [d[2] for d in deadlines], [a.user_id for a in items],
            [a.username for a in items],
            [json.dumps(move_detail(a.expected_status.value, a.to_status.value)) for a in items],
            [a.ip for a in items], [a.channel for a in items], clock.today_local())}
        answers = [(rows[i], rows[i]["current"]) for i in range(1, len(items) + 1)]
        raced = [a.referral_id for a, (row, current) in zip(items, answers, strict=True)
                 if row["id"] is None and row["side"] is not None and Side(row["side"]) in a.sides
                 and current == a.expected_status]
        if raced:
            now = dict(await conn.fetch(CURRENT, raced))
            answers = [(row, now.get(a.referral_id, current)) for a, (row, current) in zip(items, answers, strict=True)]
        return answers


async def move(subject: Subject, referral_id: int, to_status: Status, expected_status: Status,
               ip: str | None) -> dict[str, Any] | AppError | None:
    """Make the move in one statement (with the moves of other requests arriving meanwhile). Returns the
    referral detail the route returns; or the error the reference raises (404/409/403, decided from the
    locked row); or None: the route decides."""
    sides = states.allowed(expected_status, to_status)
    if to_status not in FAST_MOVES or sides is None or not subject.is_clinical or not subject.has(*ACTING_ROLES):
        return None
    if expected_status == Status.accepted:
        return None  # arrival without a slot has rules of its own (service.arrive): the route decides
    ask = _Ask(referral_id, to_status, expected_status, frozenset(sides), subject.acting_institution_id,
               subject.user_id, subject.username, ip, subject.channel)
    row, current = await group(_Mover).submit(ask)
    if row["side"] is None or current is None:
        return NotFound()  # no such referral, or the acting institution is on neither side
    if row["id"] is None:
        if current != expected_status or states.allowed(current, to_status) is None:
            return Conflict("转诊单当前状态为“{current}”，不能执行该操作，请刷新后重试", code=STATE_CONFLICT,
                            current=STATUS_LABELS.get(Status(current), current))
        if Side(row["side"]) not in sides:
            return Forbidden("该操作应由转诊的另一方执行")
        return None  # not expected (or an arrival before the booked day, which needs a reason): the reference decides
    side = Side(row["side"])
    out = {k: v for k, v in row.items() if k not in ("ask", "i", "current", "side", "moved_side", "history")}
    for k in ("summary", "follow_up_plan"):
        if isinstance(out[k], str):
            out[k] = json.loads(out[k])
    out["side"] = side.value
    out["next_moves"] = [m.value for m in states.moves_for(out["status"], out["direction"], side)]
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
        return parse_id(match.group(1)) if match is not None and enabled() else None

    async def serve(self, scope: Scope, token: str, claimed: Any, body: bytes) -> dict[str, Any] | AppError | None:
        return await self._move(scope, token, claimed, body)

    def dump(self, out: dict[str, Any]) -> bytes:
        return _dump(out)

    async def _move(self, scope: Scope, token: str, referral_id: int,
                    raw: bytes) -> dict[str, Any] | AppError | None:
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


def _dump(out: dict[str, Any]) -> bytes:
    """Serialise as the route's response model does."""
    return ReferralDetail.model_validate(out).model_dump_json().encode()
