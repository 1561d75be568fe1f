"""Outbox handlers of notifications: after each in-app notification, its SMS / e-mail deliveries are queued
by the users' preferences; each is then sent on its own (an external topic: one message per transaction,
retried with back-off, never redone after it succeeded)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.notifications import preferences
from yilianti.worker.runner import AFTER_NOTIFY, handler

if preferences.fan_out not in AFTER_NOTIFY:
    AFTER_NOTIFY.append(preferences.fan_out)


@handler(preferences.TOPIC, external=True)
def deliver_external(db: Session, payload: dict[str, Any]) -> None:
    preferences.send(db, payload)
