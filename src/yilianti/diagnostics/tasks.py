"""Periodic jobs and outbox handlers of the diagnostics workflow."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from yilianti.diagnostics.reading import critical
from yilianti.worker.runner import handler, periodic

log = logging.getLogger(__name__)


@periodic("diagnostics.escalate_critical", every_seconds=60)
def escalate_critical(db: Session) -> int:
    return critical.escalate_overdue(db)


@handler("diagnostics.critical_value")
def deliver_critical(db: Session, payload: dict[str, Any]) -> None:
    """The in-app notification is already queued; SMS / WeChat gateways plug in here."""
    log.info("critical value %s for order %s", payload.get("critical_value_id"), payload.get("accession_number"))
