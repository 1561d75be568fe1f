"""Audit helper: changes are audited in the same transaction as the change itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent


def record(
    db: Session,
    subject: Subject | None,
    action: str,
    resource_type: str,
    resource_id: object = None,
    *,
    patient_id: int | None = None,
    basis: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
    channel: str | None = None,
    username: str | None = None,
    ip: str | None = None,
) -> AuditEvent:
    event = AuditEvent(
        at=clock.now(),
        user_id=subject.user_id if subject else None,
        username=subject.username if subject else username,
        acting_institution_id=subject.acting_institution_id if subject else None,
        action=action,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id),
        patient_id=patient_id,
        access_basis=basis,
        reason=reason,
        detail=detail,
        ip=(subject.ip if subject else None) or ip,
        channel=channel or (subject.channel if subject else "system"),
    )
    db.add(event)
    return event


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What an admin change altered, for the audit detail."""
    return {k: {"from": plain(before.get(k)), "to": plain(v)} for k, v in after.items() if before.get(k) != v}


def plain(value: Any) -> Any:
    """A JSON-safe form of a column value for audit details."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
