"""The outbox: work to do after commit, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.kit import clock
from yilianti.models.outbox import OutboxMessage
from yilianti.ops import logs
from yilianti.worker import repository


def enqueue(db: Session, topic: str, payload: dict[str, Any], *, dedupe_key: str | None = None,
            delay_seconds: float = 0) -> OutboxMessage | None:
    if dedupe_key is not None and repository.queued(db, dedupe_key):
        return None
    from datetime import timedelta

    msg = OutboxMessage(topic=topic, payload=payload, dedupe_key=dedupe_key, request_id=logs.current(),
                        available_at=clock.now() + timedelta(seconds=delay_seconds))
    db.add(msg)
    return msg
