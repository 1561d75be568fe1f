"""Audit helper: changes are audited in the same transaction as the change itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.audit import repository
from yilianti.audit.repository import AuditFilter
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit.repository import Page
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


# ---------------------------------------------------------------- the auditor's views


def search(db: Session, subject: Subject, f: AuditFilter, page: int = 1, per_page: int = 100, *, q: str = "",
           count: bool = False, reads: Session | None = None, archived: bool = False) -> Page[AuditEvent]:
    """One page of the audit log as the subject may see it (with the total when `count`), read from `reads`
    (the read replica, auth/deps.ReadDB) when given, the archived months too when asked (`archived`); the search
    itself is audited on the primary."""
    result = repository.events_matching(reads or db, subject, f, page, per_page, q=q, count=count,
                                        archived=archived)
    record(db, subject, "search", "audit_log", None,
           detail={k: str(v) for k, v in {**f.__dict__, "q": q, "archived": archived or None}.items()
                   if v not in (None, "")})
    return result


def review_break_glass(db: Session, subject: Subject, grant_id: int, outcome: str, revoke: bool) -> None:
    grant = repository.grant_scoped(db, subject, grant_id)
    if grant is None:
        raise NotFound()
    if grant.reviewed_at is not None:
        raise Conflict("该紧急访问已复核")
    if grant.granted_by_user_id == subject.user_id:
        raise Forbidden("不能复核自己的紧急访问")
    if len(outcome.strip()) < 2:
        raise InvalidInput(fields={"outcome": "请填写复核意见"})
    grant.reviewed_at = clock.now()
    grant.reviewed_by_user_id = subject.user_id
    grant.review_outcome = outcome.strip()
    if revoke and grant.revoked_at is None:
        grant.revoked_at = clock.now()
    record(db, subject, "review", "access_grant", grant.id, patient_id=grant.patient_id,
           reason=outcome.strip(), detail={"revoked": revoke})
