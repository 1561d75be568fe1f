"""Queries of the outbox: whether a message is already queued, the deliverers' claims, the failed-jobs page's
list and actions, and the queue's depth and lag (/readyz, /metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from yilianti.archive.repository import OUTBOX_KEY
from yilianti.kit import clock
from yilianti.models.outbox import OutboxMessage, PeriodicRun

PENDING, DONE, FAILED, ABANDONED = "pending", "done", "failed", "abandoned"


def queued(db: Session, dedupe_key: str) -> bool:
    """Whether a message with this de-duplication key was ever queued (whatever became of it). On PostgreSQL
    the keys are in `outbox_key` (the outbox is partitioned by month and its old rows may be removed)."""
    if db.get_bind().dialect.name == "postgresql":
        return db.scalar(select(OUTBOX_KEY.c.dedupe_key).where(OUTBOX_KEY.c.dedupe_key == dedupe_key)) is not None
    return db.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)) is not None


def _due(now: datetime) -> Any:
    return (OutboxMessage.status == PENDING) & (OutboxMessage.available_at <= now)


def claim_due(db: Session, now: datetime, limit: int, ids: Sequence[int] | None = None) -> list[OutboxMessage]:
    """Up to `limit` pending messages available by `now`, oldest first, locked for this transaction; on
    PostgreSQL rows another deliverer holds are skipped (FOR UPDATE SKIP LOCKED), so workers never share one.
    `ids` narrows the claim to those messages (a retry of a batch one by one)."""
    stmt = select(OutboxMessage).where(_due(now)).order_by(OutboxMessage.id).limit(limit)
    if ids is not None:
        stmt = stmt.where(OutboxMessage.id.in_(ids))
    if db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(db.scalars(stmt))


def mark_done(db: Session, ids: Sequence[int], now: datetime) -> None:
    db.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids))
               .values(status=DONE, processed_at=now).execution_options(synchronize_session=False))


def claim_period(db: Session, name: str, period: int, now: datetime) -> bool:
    """Claim one period of a periodic job in the job's transaction: False when it already ran (or runs)."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(PeriodicRun).values(name=name, period=period, started_at=now).on_conflict_do_nothing()
    return bool(db.execute(stmt.returning(PeriodicRun.name)).first())


def forget_periods(db: Session, before: datetime) -> int:
    return db.execute(delete(PeriodicRun).where(PeriodicRun.started_at < before)).rowcount or 0  # type: ignore[attr-defined]


def any_due(db: Session, now: datetime) -> bool:
    return db.scalar(select(OutboxMessage.id).where(_due(now)).limit(1)) is not None


def troubled(db: Session, page: int, per_page: int, status: str | None = None) -> tuple[list[OutboxMessage], bool]:
    """Messages that failed for good, or still pending after a failed attempt (newest first); one page of them
    and whether there is a next one."""
    where: Any = (OutboxMessage.status == FAILED) | ((OutboxMessage.status == PENDING) & (OutboxMessage.attempts > 0))
    if status == FAILED:
        where = OutboxMessage.status == FAILED
    elif status == PENDING:
        where = (OutboxMessage.status == PENDING) & (OutboxMessage.attempts > 0)
    elif status == ABANDONED:
        where = OutboxMessage.status == ABANDONED
    rows = list(db.scalars(select(OutboxMessage).where(where).order_by(OutboxMessage.id.desc())
                           .offset((page - 1) * per_page).limit(per_page + 1)))
    return rows[:per_page], len(rows) > per_page


def get(db: Session, msg_id: int) -> OutboxMessage | None:
    return db.get(OutboxMessage, msg_id, with_for_update=True)


def stats(db: Session, now: datetime) -> dict[str, Any]:
    """Pending (and of those due), failed, and the oldest due message's wait in seconds (the queue's lag)."""
    row = db.execute(select(
        func.count().filter(OutboxMessage.status == PENDING),
        func.count().filter(_due(now)),
        func.count().filter(OutboxMessage.status == FAILED),
        func.min(OutboxMessage.available_at).filter(_due(now)),
    ).where(or_(OutboxMessage.status == PENDING, OutboxMessage.status == FAILED))).one()
    oldest = row[3]
    lag = max(0.0, (now - clock.as_utc(oldest)).total_seconds()) if oldest is not None else 0.0
    return {"pending": int(row[0]), "due": int(row[1]), "failed": int(row[2]), "lag_seconds": lag}
