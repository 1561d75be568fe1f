"""The hot path of booking on PostgreSQL: one prepared statement per booking, on asyncpg.

`service.book` is the reference implementation (and the only one on SQLite). Here the same
rules run as ONE data-modifying statement, its own transaction (autocommit):

- the session is open and has not started; the acting institution shares an alliance with
  the session's site; it may see the patient (care relationship, unexpired grant or a
  booking into one of its sessions — the basis is audited as the reference's
  `require_patient` does); the patient holds no active booking there;
- the pools are decided in the statement (the reserve while it is open, for a non-lead
  member that is grassroots or when the alliance reserves for all members), the first free
  seat of the reserved pool, else of the public pool, is claimed (`FOR UPDATE SKIP LOCKED`,
  then a conditional UPDATE) and the booking row is inserted FROM the claim — no claim, no
  booking;
- the audit row of the change (create) is inserted from the booking row, in the same
  transaction. The booking itself is the site's access basis for the patient (authz.policy:
  until 7 days after the session, ended by cancelling it) — no grant row. The read of the
  patient (`booking_patient`, with its basis — the row `require_patient` writes in the reference) changes nothing: it is
  queued to `audit.batch` once the booking is made and written by COPY within a second
  (DOMAIN.md §4b), as the reference's read row exists only when its booking commits.

When nothing is booked, the statement's row tells why. A closed session, a duplicate or no
free seat, once every earlier check of `service.book` passed, is answered with that same
error; anything else (no such session, patient not visible, no common alliance, a pool that
may not be used, a particular slot) goes to `service.book`, which books or raises the precise
error. Nothing is written in either case.

`BookingRoute` serves `POST /api/v1/bookings` with an API token before the framework's
middleware and routing (the cost of a booking is then mostly PostgreSQL's); what it cannot
serve (no bearer token, a body the schema rejects, a token that does not resolve, a case for
`service.book`) goes to the regular route with the body replayed, so errors, cookie sessions
and OpenAPI stay the route's. Only the acting subject is cached (auth_cache_seconds).
"""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

import asyncpg
from fastapi import Request
from pydantic import ValidationError
from starlette.types import Scope

from yilianti.audit import batch
from yilianti.authz.policy import booking_basis_sql
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import AppError, Forbidden
from yilianti.fastdb import (
    Busy,
    FastRoute,
    _sync,
    client_ip,
    connection,
    dispose,
    on_postgresql,
    route_subject,
    subject_of,
)
from yilianti.kit import clock
from yilianti.models.alliance import GRASSROOTS_KINDS
from yilianti.models.scheduling import Pool
from yilianti.scheduling import service
from yilianti.scheduling.schemas import BookingIn

PATH = "/api/v1/bookings"
TRIED = "yilianti.booking_statement_tried"  # scope key: the statement ran for this request and booked nothing
stats: Counter[str] = Counter()  # booked by the "statement" / "refused" by it / "fallback" to service.book
__all__ = ["BookingRoute", "book", "dispose", "enabled", "stats"]


def enabled() -> bool:
    return get_settings().booking_fast_path and on_postgresql()


def _may_book(subject: Subject) -> bool:
    return subject.is_clinical and subject.has("doctor", "nurse", "coordinator")


_GRASSROOTS = ", ".join(f"'{k}'" for k in sorted(GRASSROOTS_KINDS))
_CURRENT = "({m}.joined_on IS NULL OR {m}.joined_on <= $7::date) AND ({m}.left_on IS NULL OR {m}.left_on > $7::date)"

# $1 session, $2 patient, $3 acting institution, $4 user, $5 username, $6 now, $7 today (Beijing),
# $8 requested pool or NULL, $9 note, $10 referral, $11 random part of the number, $12 ip, $13 channel
BOOK = f"""
WITH s AS (
  SELECT cs.day, cs.starts_at, cs.ends_at, sc.institution_id AS site,
         (cs.status = 'open' AND cs.starts_at > $6::timestamptz) AS open,
         (sc.institution_id = $3::bigint
          OR EXISTS (SELECT 1 FROM membership m1 JOIN membership m2 ON m2.alliance_id = m1.alliance_id
                     WHERE m1.institution_id = $3::bigint AND m2.institution_id = sc.institution_id
                       AND {_CURRENT.format(m="m1")} AND {_CURRENT.format(m="m2")})) AS shares,
         (cs.reserve_alliance_id IS NOT NULL AND cs.reserve_released_at IS NULL AND sc.institution_id <> $3::bigint
          AND EXISTS (SELECT 1 FROM membership m JOIN alliance a ON a.id = m.alliance_id
                      JOIN institution i ON i.id = m.institution_id
                      WHERE m.alliance_id = cs.reserve_alliance_id AND m.institution_id = $3::bigint
                        AND {_CURRENT.format(m="m")} AND m.role <> 'lead'
                        AND (a.reserve_for = 'members' OR i.kind IN ({_GRASSROOTS})))) AS reserve_ok,
         CASE WHEN EXISTS (SELECT 1 FROM care_relationship c WHERE c.patient_id = $2::bigint
                           AND c.institution_id = $3::bigint AND c.ended_at IS NULL) THEN 'own'
              ELSE coalesce(
                (SELECT CASE WHEN g.kind = 'break_glass' THEN 'break_glass' ELSE 'grant' END
                 FROM access_grant g WHERE g.patient_id = $2::bigint AND g.institution_id = $3::bigint
                   AND (g.user_id IS NULL OR g.user_id = $4::bigint) AND g.revoked_at IS NULL
                   AND g.starts_at <= $6::timestamptz AND g.expires_at > $6::timestamptz
                 ORDER BY g.expires_at DESC LIMIT 1),
                CASE WHEN {booking_basis_sql("$2::bigint", "$3::bigint", "$6::timestamptz")}
                     THEN 'grant' END) END AS basis,
         EXISTS (SELECT 1 FROM booking b WHERE b.session_id = $1::bigint AND b.patient_id = $2::bigint
                 AND b.status IN ('booked', 'arrived')) AS duplicate
  FROM clinic_session cs JOIN schedule sc ON sc.id = cs.schedule_id
  WHERE cs.id = $1::bigint
),
ok AS (SELECT * FROM s WHERE open AND shares AND basis IS NOT NULL AND NOT duplicate),
pick_r AS (
  SELECT sl.id FROM slot sl
  WHERE sl.session_id = $1::bigint AND sl.pool = 'reserved' AND NOT sl.booked
    AND ($8::text IS NULL OR $8::text = 'reserved') AND EXISTS (SELECT 1 FROM ok WHERE ok.reserve_ok)
  ORDER BY sl.seq LIMIT 1 FOR UPDATE SKIP LOCKED
),
pick_p AS (
  SELECT sl.id FROM slot sl
  WHERE sl.session_id = $1::bigint AND sl.pool = 'public' AND NOT sl.booked
    AND ($8::text IS NULL OR $8::text = 'public') AND EXISTS (SELECT 1 FROM ok)
    AND NOT EXISTS (SELECT 1 FROM pick_r)
  ORDER BY sl.seq LIMIT 1 FOR UPDATE SKIP LOCKED
),
claim AS (
  UPDATE slot sl SET booked = true
  WHERE sl.id = (SELECT id FROM pick_r UNION ALL SELECT id FROM pick_p LIMIT 1) AND NOT sl.booked
  RETURNING sl.id, sl.seq, sl.pool, sl.starts_at
),
bk AS (
  INSERT INTO booking (number, session_id, slot_id, patient_id, pool, status, booked_by_user_id,
                       booked_by_institution_id, note, referral_id, created_at)
  SELECT to_char(ok.day, 'YYYYMMDD') || '-' || lpad(claim.seq::text, greatest(3, length(claim.seq::text)), '0')
           || '-' || $11::text,
         $1::bigint, claim.id, $2::bigint, claim.pool, 'booked', $4::bigint, $3::bigint, $9::text, $10::bigint,
         $6::timestamptz
  FROM claim, ok
  RETURNING id, number, slot_id, pool, created_at
),
au AS (
  INSERT INTO audit_event (at, user_id, username, acting_institution_id, action, resource_type, resource_id,
                           patient_id, access_basis, reason, detail, ip, channel)
  SELECT $6::timestamptz, $4::bigint, $5::text, $3::bigint, 'create', 'booking', bk.id::text, $2::bigint, NULL,
         NULL, json_build_object('session_id', $1::bigint, 'seq', claim.seq, 'pool', claim.pool,
                                 'number', bk.number),
         $12::text, $13::text
  FROM bk JOIN claim ON claim.id = bk.slot_id
  RETURNING id
)
SELECT s.open, s.shares, s.reserve_ok, s.basis, s.duplicate, s.starts_at AS session_starts_at, s.site,
       r.id, r.number, r.slot_id, r.seq, r.starts_at, r.pool, r.created_at, (SELECT count(*) FROM au) AS audited
FROM s LEFT JOIN (SELECT bk.id, bk.number, bk.slot_id, claim.seq, claim.starts_at, bk.pool, bk.created_at
                  FROM bk JOIN claim ON claim.id = bk.slot_id) r ON true
"""


_planned: set[int] = set()  # server pids whose connection holds BOOK's generic plan, made by _plan


async def _plan(conn: Any, args: list[Any]) -> None:
    """Make BOOK's generic plan on this connection with sequential scans off, by running it once
    for no session (it matches nothing and writes nothing).

    The pool uses plan_cache_mode=force_generic_plan, so the plan made at the first execution
    stays for the connection's life, until an ANALYZE or DDL invalidates it. Made while a table
    is still empty (a new installation, or autovacuum off as on the benchmark machine), it would
    scan `booking` sequentially for the duplicate check on every booking (1.2 ms at 10,000 rows,
    growing with the table) — measured 2026-11-23. With sequential scans off at planning time
    every lookup in the plan uses its index, whatever the statistics say then."""
    try:
        await conn.execute("SET enable_seqscan = off")
        await conn.fetchrow(BOOK, 0, *args[1:10], "PLAN", *args[11:])
    finally:
        await conn.execute("RESET enable_seqscan")
    _planned.add(conn.get_server_pid())


async def _statement(subject: Subject, body: BookingIn, ip: str | None) -> dict[str, Any] | AppError | None:
    """Book in one statement. Returns the booking; or the error the reference would raise when the
    statement shows it unambiguously (closed session, duplicate, no free seat — after every earlier
    check passed, as service.book orders them); or None: service.book decides and explains."""
    now = clock.now()
    args = [body.session_id, body.patient_id, subject.acting_institution_id, subject.user_id, subject.username,
            now, clock.today_local(), body.pool, body.note, body.referral_id, None, ip, subject.channel]
    row = None
    async with connection() as conn:  # Busy when every connection stays busy: nothing written, 503
        if conn.get_server_pid() not in _planned:
            await _plan(conn, args)
        for _ in range(3):
            args[10] = secrets.token_hex(2).upper()
            try:
                row = await conn.fetchrow(BOOK, *args)
                break
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "uq_booking_active_patient_session":
                    return service.DuplicateBooking()  # a concurrent booking of this patient won
                if exc.constraint_name != "uq_booking_number":
                    return None
                # the random part of the number collided with another booking's: draw again
    if row is None or row["basis"] is None or not row["shares"]:
        return None  # no such session, patient not visible, no common alliance: service.book explains
    if row["id"] is None:
        if not row["open"]:
            return service.SessionClosed()
        if body.pool == Pool.reserved and not row["reserve_ok"]:
            return None  # a pool this institution may not use: service.book explains
        if row["duplicate"]:
            return service.DuplicateBooking()
        return service.SlotFull()
    # the reference's require_patient row (rolled back with a refused booking, so only for a booking)
    batch.read(subject, "booking_patient", body.patient_id, patient_id=body.patient_id, basis=row["basis"],
               ip=ip, at=now)
    return {"id": row["id"], "number": row["number"], "status": "booked", "session_id": body.session_id,
            "slot_id": row["slot_id"], "seq": row["seq"], "slot_starts_at": row["starts_at"],
            "session_starts_at": row["session_starts_at"], "pool": row["pool"], "patient_id": body.patient_id,
            "site_institution_id": row["site"], "booked_by_institution_id": subject.acting_institution_id,
            "note": body.note, "rescheduled_from_id": None, "created_at": row["created_at"], "cancelled_at": None,
            "cancel_reason": None, "arrived_at": None, "no_show_at": None}


async def book(request: Request, body: BookingIn) -> dict[str, Any]:
    """The route's path on PostgreSQL (cookie sessions, and whatever BookingRoute handed over)."""
    subject = await subject_of(request)
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden("只有医生、护士或转诊协调员可以预约")
    out = None
    if body.slot_id is None and not request.scope.get(TRIED):
        try:
            out = await _statement(subject, body, subject.ip)
        except Busy as busy:
            out = busy
    if isinstance(out, AppError):
        stats["refused"] += 1
        raise out
    if out is not None:
        stats["statement"] += 1
        return out
    stats["fallback"] += 1
    # nothing booked: the reference implementation books or raises the precise error
    booking = await _sync(lambda db, s, b: service.book(db, s, b).id, subject, body)
    return await _sync(_booking_out, subject, booking)


def _booking_out(db: Any, subject: Subject, booking_id: int) -> dict[str, Any]:
    from yilianti.scheduling.api import _booking_out as out

    booking, session, _, slot = service.get_booking(db, subject, booking_id)
    return out(booking, session, slot, session.schedule.institution_id)


class BookingRoute(FastRoute):
    """Pure ASGI: `POST /api/v1/bookings` with a bearer token, served without the framework stack.

    Anything else, and every case where the statement books nothing, goes to the app
    unchanged (the body replayed), so errors, cookie sessions and OpenAPI stay the route's.
    """

    ok_status = 201
    count_fallback = False  # the route's `book` counts the fallbacks it serves
    stats = stats

    def claim(self, scope: Scope) -> Any:
        return True if scope["path"] == PATH and enabled() else None

    async def serve(self, scope: Scope, token: str, claimed: Any, body: bytes) -> dict[str, Any] | AppError | None:
        return await self._book(scope, token, body)

    def dump(self, out: dict[str, Any]) -> bytes:
        return _dump(out)

    async def _book(self, scope: Scope, token: str, raw: bytes) -> dict[str, Any] | AppError | None:
        try:
            data = BookingIn.model_validate_json(raw)
        except ValidationError:
            return None
        if data.slot_id is not None:
            return None
        subject = await route_subject(scope, token)
        if subject is None or not _may_book(subject):
            return None
        try:
            out = await _statement(subject, data, client_ip(scope))
        except asyncpg.PostgresError:
            out = None  # the statement failed as a whole: nothing was written
        if out is None:
            scope[TRIED] = True
        return out


_out_model: Any = None


def _dump(out: dict[str, Any]) -> bytes:
    """Serialise as the route's response model does (BookingOut lives in api.py, which imports this module)."""
    global _out_model
    if _out_model is None:
        from yilianti.scheduling.api import BookingOut

        _out_model = BookingOut
    return _out_model.model_validate(out).model_dump_json().encode()
