"""Queries of the outbox: whether a message is already queued, and the runner's claims."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.models.outbox import OutboxMessage


def queued(db: Session, dedupe_key: str) -> bool:
    """Whether a message with this de-duplication key was ever queued (whatever became of it)."""
    return db.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)) is not None


def due_ids(db: Session, now: datetime, limit: int) -> list[int]:
    """Ids of pending messages available by `now`, oldest first."""
    return list(db.scalars(select(OutboxMessage.id)
                           .where(OutboxMessage.status == "pending", OutboxMessage.available_at <= now)
                           .order_by(OutboxMessage.id).limit(limit)))


def claim(db: Session, msg_id: int) -> OutboxMessage | None:
    """The message if it is still pending, locked (on PostgreSQL skipping one another worker holds)."""
    stmt = select(OutboxMessage).where(OutboxMessage.id == msg_id, OutboxMessage.status == "pending")
    if db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return db.scalar(stmt)
