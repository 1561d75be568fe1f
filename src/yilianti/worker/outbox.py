"""The outbox: work to do after commit, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.kit import clock
from yilianti.models.outbox import OutboxMessage


def enqueue(db: Session, topic: str, payload: dict[str, Any], *, dedupe_key: str | None = None,
            delay_seconds: float = 0) -> OutboxMessage | None:
    if dedupe_key is not None:
        existing = db.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key))
        if existing is not None:
            return None
    from datetime import timedelta

    msg = OutboxMessage(topic=topic, payload=payload, dedupe_key=dedupe_key,
                        available_at=clock.now() + timedelta(seconds=delay_seconds))
    db.add(msg)
    return msg
