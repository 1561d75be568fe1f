"""Periodic jobs and outbox handlers of chronic care: reminders queued before due dates and delivered after
commit, lab results checked for alarms, unacknowledged alarms escalated, the monthly outcome figures stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.chronic import alarms, outcome_months, reminders
from yilianti.worker.runner import handler, periodic


@periodic("chronic.queue_reminders", every_seconds=900)
def queue_reminders(db: Session) -> int:
    return reminders.queue_due(db)


@handler(reminders.TOPIC, external=True)  # the gateway adapter sends an SMS: one per transaction, never redone in a batch
def deliver_reminder(db: Session, payload: dict[str, Any]) -> None:
    reminders.deliver(db, int(payload["reminder_id"]))


@periodic("chronic.scan_labs", every_seconds=60)
def scan_labs(db: Session) -> int:
    return alarms.scan_labs(db)


@periodic("chronic.escalate_alarms", every_seconds=300)
def escalate_alarms(db: Session) -> int:
    return alarms.escalate_overdue(db)


@periodic("chronic.outcome_months", every_seconds=3600)
def store_outcome_months(db: Session) -> int:
    """The charts' monthly figures of every institution's registries, rebuilt hourly (the last 13 months)."""
    return outcome_months.refresh(db)
