"""The hot path of booking on PostgreSQL: one asynchronous statement per booking.

`service.book` is the reference implementation (and the only one on SQLite). Here the same
rules run as ONE data-modifying statement on an async connection:

- the session is open and has not started; the acting institution may see the patient
  (care relationship or unexpired grant); the patient holds no active booking there;
- the first free seat of the pool is claimed (`FOR UPDATE SKIP LOCKED`, then a conditional
  UPDATE) and the booking row is inserted FROM the claim — no claim, no booking;
- the lead's booking grant and the audit rows are inserted from the booking row, in the
  same transaction.

Static facts (a session's site and reserve alliance, which pools an institution may use)
and the acting subject are cached for a few seconds. When the statement books nothing,
the request is handed to `service.book`, which either books (a race lost on the last seat
of one pool) or raises the precise error (full, duplicate, closed, not visible, forbidden).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from fastapi import Request
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from yilianti import db as dbmod
from yilianti.auth.deps import _bearer, csrf_protect, resolve_subject
from yilianti.authz.subject import Subject
from yilianti.config import get_settings, normalise_db_url
from yilianti.exceptions import Forbidden, NotFound, Unauthenticated
from yilianti.kit import clock
from yilianti.models.scheduling import ClinicSession, Pool, Schedule
from yilianti.scheduling import service
from yilianti.scheduling.schemas import BookingIn

_engine: AsyncEngine | None = None
_cache: dict[Any, tuple[float, Any]] = {}
stats: Counter[str] = Counter()  # "statement" (booked in one statement) / "fallback" (service.book)


def enabled() -> bool:
    settings = get_settings()
    return settings.booking_fast_path and normalise_db_url(settings.database_url).startswith("postgresql")


def engine() -> AsyncEngine:
    global _engine
    if _engine is None:
        s = get_settings()
        # one statement is its own transaction: autocommit saves the BEGIN and COMMIT round trips
        _engine = create_async_engine(normalise_db_url(s.database_url), pool_size=s.db_pool_size,
                                      max_overflow=s.db_max_overflow, pool_timeout=s.db_pool_timeout,
                                      pool_recycle=1800, isolation_level="AUTOCOMMIT")
    return _engine


async def dispose() -> None:
    global _engine
    if _engine is not None:
        await _engine.dispose()
        _engine = None


def _cached(key: Any, ttl: float) -> Any:
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


def _remember(key: Any, value: Any, ttl: float) -> Any:
    if len(_cache) > 10000:
        _cache.clear()
    _cache[key] = (time.monotonic() + ttl, value)
    return value


def _sync(fn: Any, *args: Any) -> Any:
    """Run fn(db, *args) in a worker thread with its own unit of work."""

    def run() -> Any:
        with dbmod.session_factory()() as db:
            result = fn(db, *args)
            db.commit()
            return result

    return anyio.to_thread.run_sync(run)


async def subject_of(request: Request) -> Subject:
    await csrf_protect(request)
    ttl = get_settings().auth_cache_seconds
    token = _bearer(request)
    if token:
        key: tuple[Any, ...] = ("token", token)
    else:
        key = ("session", request.session.get("uid"), request.session.get("epoch"), request.session.get("inst"))
    subject = _cached(key, ttl)
    if subject is None:
        subject = await _sync(resolve_subject, request)
        if subject is None:
            raise Unauthenticated()
        _remember(key, subject, ttl)
    request.state.subject = subject
    if not subject.is_clinical:
        raise Forbidden("此功能仅限临床人员（医生、护士、诊断医师、转诊协调员）")
    return subject


@dataclass(frozen=True)
class SessionFacts:
    site_id: int
    reserve_alliance_id: int | None
    day: str
    starts_at: datetime
    ends_at: datetime


async def _session_facts(session_id: int) -> SessionFacts | None:
    async with engine().connect() as conn:
        row = (await conn.execute(select(Schedule.institution_id, ClinicSession.reserve_alliance_id, ClinicSession.day,
                            ClinicSession.starts_at, ClinicSession.ends_at)
                                  .join(Schedule, Schedule.id == ClinicSession.schedule_id)
                                  .where(ClinicSession.id == session_id))).first()
    if row is None:
        return None
    return SessionFacts(row[0], row[1], f"{row[2]:%Y%m%d}", clock.as_utc(row[3]), clock.as_utc(row[4]))


def _pools(db: Any, institution_id: int, facts: SessionFacts) -> list[str]:
    """Pools depend on the institution, the session's site and reserve alliance only (cached on those)."""
    if not service.share_alliance(db, institution_id, facts.site_id):
        return []
    if service._may_use_reserve(db, institution_id, facts.reserve_alliance_id, facts.site_id):
        return [Pool.reserved, Pool.public]
    return [Pool.public]


BOOK = text("""
WITH ok AS (
  SELECT 1 FROM clinic_session cs
  WHERE cs.id = :sid AND cs.status = 'open' AND cs.starts_at > :now
    AND (EXISTS (SELECT 1 FROM care_relationship c WHERE c.patient_id = :pid AND c.institution_id = :inst
                 AND c.ended_at IS NULL)
         OR EXISTS (SELECT 1 FROM access_grant g WHERE g.patient_id = :pid AND g.institution_id = :inst
                    AND (g.user_id IS NULL OR g.user_id = :uid) AND g.revoked_at IS NULL
                    AND g.starts_at <= :now AND g.expires_at > :now))
    AND NOT EXISTS (SELECT 1 FROM booking b WHERE b.session_id = :sid AND b.patient_id = :pid
                    AND b.status IN ('booked', 'arrived'))
),
pick AS (
  SELECT s.id FROM slot s
  WHERE s.session_id = :sid AND s.pool = :pool AND NOT s.booked AND EXISTS (SELECT 1 FROM ok)
  ORDER BY s.seq LIMIT 1 FOR UPDATE SKIP LOCKED
),
claim AS (
  UPDATE slot s SET booked = true FROM pick WHERE s.id = pick.id AND NOT s.booked
  RETURNING s.id, s.seq, s.pool, s.starts_at
),
bk AS (
  INSERT INTO booking (number, session_id, slot_id, patient_id, pool, status, booked_by_user_id,
                       booked_by_institution_id, note, referral_id, created_at)
  SELECT CAST(:day AS TEXT) || '-' || lpad(claim.seq::text, 3, '0') || '-' || CAST(:rand AS TEXT),
         :sid, claim.id, :pid, claim.pool, 'booked', :uid, :inst, CAST(:note AS VARCHAR),
         CAST(:ref AS BIGINT), :now
  FROM claim
  RETURNING id, number, slot_id, pool, created_at
),
gr AS (
  INSERT INTO access_grant (patient_id, institution_id, user_id, kind, reason, includes_shared, source_type,
                            source_id, granted_by_user_id, starts_at, expires_at, needs_review, created_at)
  SELECT :pid, :site, NULL, 'booking', '预约就诊', true, 'booking', bk.id, :uid, :now, :grant_until, false, :now
  FROM bk WHERE CAST(:site AS BIGINT) <> CAST(:inst AS BIGINT)
  RETURNING id
),
au AS (
  INSERT INTO audit_event (at, user_id, username, acting_institution_id, action, resource_type, resource_id,
                           patient_id, access_basis, reason, detail, ip, channel)
  SELECT :now, :uid, CAST(:uname AS VARCHAR), :inst, 'create', 'booking', bk.id::text, :pid, NULL, NULL,
         json_build_object('session_id', CAST(:sid AS BIGINT), 'seq', claim.seq, 'pool', claim.pool,
                           'number', bk.number),
         CAST(:ip AS VARCHAR), CAST(:channel AS VARCHAR)
  FROM bk JOIN claim ON claim.id = bk.slot_id
  UNION ALL
  SELECT :now, :uid, CAST(:uname AS VARCHAR), :inst, 'grant', 'access_grant', gr.id::text, :pid, NULL,
         '预约就诊', json_build_object('institution_id', CAST(:site AS BIGINT), 'kind', 'booking'),
         CAST(:ip AS VARCHAR), CAST(:channel AS VARCHAR)
  FROM gr
  RETURNING id
)
SELECT bk.id, bk.number, bk.slot_id, claim.seq, claim.starts_at, bk.pool, bk.created_at,
       (SELECT count(*) FROM au) AS audited
FROM bk JOIN claim ON claim.id = bk.slot_id
""")


async def book(request: Request, body: BookingIn) -> dict[str, Any]:
    subject = await subject_of(request)
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden("只有医生、护士或转诊协调员可以预约")
    inst = subject.acting_institution_id
    assert inst is not None
    facts = _cached(("session", body.session_id), 60)
    if facts is None:
        facts = await _session_facts(body.session_id)
        if facts is None:
            raise NotFound("出诊时段不存在")
        _remember(("session", body.session_id), facts, 60)
    pools_key = ("pools", inst, facts.site_id, facts.reserve_alliance_id)
    pools = _cached(pools_key, 30)
    if pools is None:
        pools = _remember(pools_key, await _sync(_pools, inst, facts), 30)
    if body.pool is not None:
        pools = [p for p in pools if p == body.pool]
    row = None
    if pools and body.slot_id is None:
        now = clock.now()
        params = {"sid": body.session_id, "pid": body.patient_id, "inst": inst, "uid": subject.user_id,
                  "uname": subject.username, "now": now, "day": facts.day, "note": body.note,
                  "ref": body.referral_id, "site": facts.site_id, "ip": subject.ip, "channel": subject.channel,
                  "grant_until": facts.ends_at + timedelta(days=7)}
        try:
            async with engine().connect() as conn:
                for pool in pools:
                    row = (await conn.execute(BOOK, {**params, "pool": pool,
                                                     "rand": secrets.token_hex(2).upper()})).first()
                    if row is not None:
                        break
        except IntegrityError:
            row = None  # a concurrent booking of this patient: service.book reports it
    stats["fallback" if row is None else "statement"] += 1
    if row is None:
        # nothing booked: the reference implementation books or raises the precise error
        booking = await _sync(lambda db, s, b: service.book(db, s, b).id, subject, body)
        return await _sync(_booking_out, subject, booking)
    return {"id": row.id, "number": row.number, "status": "booked", "session_id": body.session_id,
            "slot_id": row.slot_id, "seq": row.seq, "slot_starts_at": row.starts_at,
            "session_starts_at": facts.starts_at, "pool": row.pool, "patient_id": body.patient_id,
            "site_institution_id": facts.site_id, "booked_by_institution_id": inst, "note": body.note,
            "rescheduled_from_id": None, "created_at": row.created_at, "cancelled_at": None,
            "cancel_reason": None, "arrived_at": None, "no_show_at": None}


def _booking_out(db: Any, subject: Subject, booking_id: int) -> dict[str, Any]:
    from yilianti.scheduling.api import _booking_out as out

    booking, session, _, slot = service.get_booking(db, subject, booking_id)
    return out(booking, session, slot, session.schedule.institution_id)
