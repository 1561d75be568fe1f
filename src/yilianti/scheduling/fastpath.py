"""The hot path of booking on PostgreSQL: one prepared statement per batch of bookings, on asyncpg.

`booking_rules.book` is the reference implementation (and the only one on SQLite). Here the same
rules run as ONE data-modifying statement, its own transaction (autocommit), for every booking
that arrived together (`_Booker`, a `fastdb.GroupCommit`: while earlier bookings are at PostgreSQL the next
ones wait and then go in one statement and one commit — never two of one session). For each
booking, on its own row:

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
free seat, once every earlier check of `booking_rules.book` passed, is answered with that same
error; anything else (no such session, patient not visible, no common alliance, a pool that
may not be used, a particular slot) goes to `booking_rules.book`, which books or raises the precise
error. Nothing is written in either case. A statement that fails as a whole (a number drawn
twice, a concurrent duplicate caught by the unique index) writes nothing; its bookings are run
again, one by one where needed, so each still gets its own answer.

Why batches: a booking's statement costs PostgreSQL far more in starting the statement, the
commit and the round trip than in its rows; eight bookings in one statement cost about as much
as three alone (bench/booking.py, docs/benchmarks.md).

`BookingRoute` serves `POST /api/v1/bookings` with an API token before the framework's
middleware and routing (the cost of a booking is then mostly PostgreSQL's); what it cannot
serve (no bearer token, a body the schema rejects, a token that does not resolve, a case for
`booking_rules.book`) goes to the regular route with the body replayed, so errors, cookie sessions
and OpenAPI stay the route's. Only the acting subject is cached (auth_cache_seconds).
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import Request
from pydantic import ValidationError
from sqlalchemy import and_
from sqlalchemy.orm import aliased
from starlette.types import Scope

from yilianti.audit import batch
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import AppError, Forbidden
from yilianti.fastdb.group import GroupCommit, group
from yilianti.fastdb.pool import Busy, dispose, on_postgresql
from yilianti.fastdb.route import FastRoute, _sync
from yilianti.fastdb.subject import client_ip, route_subject, subject_of
from yilianti.kit import clock
from yilianti.kit.sqlcompile import Params, column, sql
from yilianti.models.scheduling import BookingStatus, ClinicSession, Pool, SessionStatus
from yilianti.scheduling import booking as booking_rules
from yilianti.scheduling import rules
from yilianti.scheduling.schemas import BookingIn, BookingOut, booking_out

PATH = "/api/v1/bookings"
TRIED = "yilianti.booking_statement_tried"  # scope key: the statement ran for this request and booked nothing
stats: Counter[str] = Counter()  # booked by the "statement" / "refused" by it / "fallback" to booking_rules.book
__all__ = ["BookingRoute", "book", "dispose", "enabled", "stats"]


def enabled() -> bool:
    return get_settings().booking_fast_path and on_postgresql()


def _may_book(subject: Subject) -> bool:
    return subject.is_clinical and subject.has("doctor", "nurse", "coordinator")


# One element per booking: sessions, patients, acting institutions, users, usernames, requested pools (NULL: any),
# notes, referrals, random parts of the numbers, ips, channels; and for the whole batch now, today (Beijing).
P = Params(sessions="bigint[]", patients="bigint[]", insts="bigint[]", users="bigint[]", usernames="text[]",
           now="timestamptz", today="date", pools="text[]", notes="text[]", referrals="bigint[]", rnds="text[]",
           ips="text[]", channels="text[]")
_cs = aliased(ClinicSession, name="cs")
_row = {name: column(f"r.{name}") for name in ("session_id", "patient_id", "inst", "user_id")}
_site, _reserve_alliance = column("sc.institution_id"), column("cs.reserve_alliance_id")


def _book_statement() -> str:
    """BOOK. Every rule in it is a clause of its domain (authz.policy: the access basis; scheduling.rules: a
    shared alliance, the reserve and who may use it, an active booking; alliance.repository.current_on:
    membership in force), compiled here once for the rows of `r`; the rest is the statement's own fetch and
    commit. The lookups into large tables (care relationships, grants, bookings) are scalar subqueries with
    LIMIT 1, not EXISTS (`policy.found`): for several outer rows the planner may run an EXISTS as a hash of the
    whole table, built on every execution (with statistics taken while the table was small, measured
    2026-12-06: 30–120 ms a batch, growing with it)."""
    r = _row
    bookable = sql(and_(_cs.status == SessionStatus.open, _cs.starts_at > P.now))
    shares = sql(rules.shares_alliance(_site, r["inst"], P.today))
    reserve_ok = sql(and_(rules.reserve_open(_cs),
                          rules.may_use_reserve(r["inst"], _reserve_alliance, _site, P.today)))
    basis = sql(policy.basis(r["patient_id"], r["inst"], r["user_id"], P.now))
    duplicate = sql(policy.found(rules.active_booking(r["session_id"], r["patient_id"])))
    reserved, public = f"'{Pool.reserved}'", f"'{Pool.public}'"
    return f"""
WITH r AS (
  SELECT * FROM unnest({P.sessions}, {P.patients}, {P.insts}, {P.users}, {P.usernames}, {P.pools}, {P.notes},
                       {P.referrals}, {P.rnds}, {P.ips}, {P.channels}) WITH ORDINALITY
    AS r(session_id, patient_id, inst, user_id, username, pool, note, referral_id, rnd, ip, channel, i)
),
s AS (
  SELECT r.*, cs.day, cs.starts_at, sc.institution_id AS site,
         ({bookable}) AS open,
         ({shares}) AS shares,
         ({reserve_ok}) AS reserve_ok,
         {basis} AS basis,
         {duplicate} AS duplicate
  FROM r JOIN clinic_session cs ON cs.id = r.session_id JOIN schedule sc ON sc.id = cs.schedule_id
),
pick AS (
  SELECT s.i, coalesce(pr.id, pp.id) AS id
  FROM s
  LEFT JOIN LATERAL (
    SELECT sl.id FROM slot sl
    WHERE sl.session_id = s.session_id AND sl.pool = {reserved} AND NOT sl.booked
      AND (s.pool IS NULL OR s.pool = {reserved}) AND s.reserve_ok
    ORDER BY sl.seq LIMIT 1 FOR UPDATE SKIP LOCKED) pr ON true
  LEFT JOIN LATERAL (
    SELECT sl.id FROM slot sl
    WHERE sl.session_id = s.session_id AND sl.pool = {public} AND NOT sl.booked
      AND (s.pool IS NULL OR s.pool = {public}) AND pr.id IS NULL
    ORDER BY sl.seq LIMIT 1 FOR UPDATE SKIP LOCKED) pp ON true
  WHERE s.open AND s.shares AND s.basis IS NOT NULL AND NOT s.duplicate
),
claim AS (
  UPDATE slot sl SET booked = true
  FROM pick WHERE sl.id = pick.id AND NOT sl.booked
  RETURNING pick.i, sl.id, sl.seq, sl.pool, sl.starts_at
),
bk AS (
  INSERT INTO booking (number, session_id, slot_id, patient_id, pool, status, booked_by_user_id,
                       booked_by_institution_id, note, referral_id, created_at)
  SELECT to_char(s.day, 'YYYYMMDD') || '-' || lpad(claim.seq::text, greatest(3, length(claim.seq::text)), '0')
           || '-' || s.rnd,
         s.session_id, claim.id, s.patient_id, claim.pool, '{BookingStatus.booked}', s.user_id, s.inst, s.note,
         s.referral_id, {P.now}
  FROM claim JOIN s ON s.i = claim.i
  RETURNING id, number, slot_id, pool, created_at
),
au AS (
  INSERT INTO audit_event (at, user_id, username, acting_institution_id, action, resource_type, resource_id,
                           patient_id, access_basis, reason, detail, ip, channel)
  SELECT {P.now}, s.user_id, s.username, s.inst, 'create', 'booking', bk.id::text, s.patient_id, NULL,
         NULL, json_build_object('session_id', s.session_id, 'seq', claim.seq, 'pool', claim.pool,
                                 'number', bk.number),
         s.ip, s.channel
  FROM bk JOIN claim ON claim.id = bk.slot_id JOIN s ON s.i = claim.i
)
SELECT r.i, s.open, s.shares, s.reserve_ok, s.basis, s.duplicate, s.starts_at AS session_starts_at, s.site,
       x.id, x.number, x.slot_id, x.seq, x.starts_at, x.pool, x.created_at
FROM r LEFT JOIN s ON s.i = r.i
LEFT JOIN (SELECT claim.i, bk.id, bk.number, bk.slot_id, claim.seq, claim.starts_at, bk.pool, bk.created_at
           FROM bk JOIN claim ON claim.id = bk.slot_id) x ON x.i = r.i
"""


BOOK = _book_statement()


@dataclass(frozen=True)
class _Ask:
    """One booking for the next batch."""

    session_id: int
    patient_id: int
    institution_id: int
    user_id: int
    username: str
    pool: str | None
    note: str | None
    referral_id: int | None
    ip: str | None
    channel: str


def _arguments(asks: list[_Ask]) -> list[Any]:
    return P.args(sessions=[a.session_id for a in asks], patients=[a.patient_id for a in asks],
                  insts=[a.institution_id for a in asks], users=[a.user_id for a in asks],
                  usernames=[a.username for a in asks], now=clock.now(), today=clock.today_local(),
                  pools=[a.pool for a in asks], notes=[a.note for a in asks], referrals=[a.referral_id for a in asks],
                  rnds=[secrets.token_hex(2).upper() for _ in asks], ips=[a.ip for a in asks],
                  channels=[a.channel for a in asks])


_planned: set[int] = set()  # server pids whose connection holds BOOK's generic plan, made by _plan


async def _plan(conn: Any) -> None:
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
        await conn.fetch(BOOK, *_arguments([_Ask(0, 0, 0, 0, "", None, None, None, None, "")]))
    finally:
        await conn.execute("RESET enable_seqscan")
    _planned.add(conn.get_server_pid())


class _Booker(GroupCommit[_Ask]):
    """The bookings of one process, grouped (fastdb.GroupCommit): one session per statement, so two
    bookings never compete for a seat inside one statement; each is decided on its own row of BOOK."""

    def key(self, item: _Ask) -> Any:
        return item.session_id

    async def prepare(self, conn: Any) -> None:
        if conn.get_server_pid() not in _planned:
            await _plan(conn)

    async def execute(self, conn: Any, items: list[_Ask]) -> list[Any]:
        rows = {row["i"]: row for row in await self._execute(conn, items)}
        return [rows[i] for i in range(1, len(items) + 1)]

    def failed_alone(self, item: _Ask, exc: asyncpg.PostgresError) -> Any:
        if isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name == "uq_booking_active_patient_session":
            return rules.DuplicateBooking()  # a concurrent booking of the patient won
        raise exc

    @staticmethod
    async def _execute(conn: Any, asks: list[_Ask]) -> list[Any]:
        for attempt in range(3):
            try:
                return list(await conn.fetch(BOOK, *_arguments(asks)))
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "uq_booking_number" or attempt == 2:
                    raise
                # the random part of a number collided with another booking's: draw again
        raise AssertionError("unreachable")


async def _statement(subject: Subject, body: BookingIn, ip: str | None) -> dict[str, Any] | AppError | None:
    """Book in one statement (with the bookings of other requests arriving meanwhile). Returns the booking;
    or the error the reference would raise when the statement shows it unambiguously (closed session,
    duplicate, no free seat — after every earlier check passed, as booking_rules.book orders them); or None:
    booking_rules.book decides and explains."""
    if subject.user_id is None or subject.acting_institution_id is None:
        return None  # no acting user or institution: booking_rules.book explains
    ask = _Ask(body.session_id, body.patient_id, subject.acting_institution_id, subject.user_id, subject.username,
               body.pool, body.note, body.referral_id, ip, subject.channel)
    row = await group(_Booker).submit(ask)
    if isinstance(row, AppError):
        return row
    if row is None or row["basis"] is None or not row["shares"]:
        return None  # no such session, patient not visible, no common alliance: booking_rules.book explains
    if row["id"] is None:
        if not row["open"]:
            return rules.SessionClosed()
        if body.pool == Pool.reserved and not row["reserve_ok"]:
            return None  # a pool this institution may not use: booking_rules.book explains
        if row["duplicate"]:
            return rules.DuplicateBooking()
        return rules.SlotFull()
    # the reference's require_patient row (rolled back with a refused booking, so only for a booking)
    batch.read(subject, "booking_patient", body.patient_id, patient_id=body.patient_id, basis=row["basis"],
               ip=ip, at=row["created_at"])
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
    booking = await _sync(lambda db, s, b: booking_rules.book(db, s, b).id, subject, body)
    return await _sync(_booking_out, subject, booking)


def _booking_out(db: Any, subject: Subject, booking_id: int) -> dict[str, Any]:
    booking, session, _, slot = booking_rules.get_booking(db, subject, booking_id)
    return booking_out(booking, session, slot, session.schedule.institution_id)


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


def _dump(out: dict[str, Any]) -> bytes:
    """Serialise as the route's response model does."""
    return BookingOut.model_validate(out).model_dump_json().encode()
