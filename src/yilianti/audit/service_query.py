"""Searching the audit log, scoped by who is looking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.models.alliance import Institution, Membership
from yilianti.models.audit import AuditEvent
from yilianti.models.patient import AccessGrant


@dataclass
class AuditFilter:
    username: str = ""
    action: str = ""
    resource_type: str = ""
    patient_id: int | None = None
    institution_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None


def _scope(db: Session, subject: Subject) -> Select | None:  # type: ignore[type-arg]
    """None = everything; otherwise a select of institution ids whose events may be seen."""
    if subject.has("system_admin", "auditor"):
        return None
    if subject.has("alliance_admin") and subject.alliance_admin_of:
        return select(Membership.institution_id).where(Membership.alliance_id.in_(subject.alliance_admin_of))
    if subject.has("institution_admin") and subject.acting_institution_id:
        return select(Institution.id).where(Institution.id == subject.acting_institution_id)
    raise Forbidden()


def search(db: Session, subject: Subject, f: AuditFilter, limit: int = 100, offset: int = 0) -> list[AuditEvent]:
    scope = _scope(db, subject)
    stmt = select(AuditEvent)
    if scope is not None:
        stmt = stmt.where(AuditEvent.acting_institution_id.in_(scope))
    if f.username:
        stmt = stmt.where(AuditEvent.username == f.username.strip().lower())
    if f.action:
        stmt = stmt.where(AuditEvent.action == f.action)
    if f.resource_type:
        stmt = stmt.where(AuditEvent.resource_type == f.resource_type)
    if f.patient_id:
        stmt = stmt.where(AuditEvent.patient_id == f.patient_id)
    if f.institution_id:
        stmt = stmt.where(AuditEvent.acting_institution_id == f.institution_id)
    tz = clock.SHANGHAI
    if f.date_from:
        stmt = stmt.where(AuditEvent.at >= datetime.combine(f.date_from, time.min, tz))
    if f.date_to:
        stmt = stmt.where(AuditEvent.at < datetime.combine(f.date_to + timedelta(days=1), time.min, tz))
    rows = list(db.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit).offset(offset)))
    audit.record(db, subject, "search", "audit_log", None,
                 detail={k: str(v) for k, v in f.__dict__.items() if v not in (None, "")})
    return rows


def break_glass_to_review(db: Session, subject: Subject, include_reviewed: bool = False) -> list[AccessGrant]:
    scope = _scope(db, subject)
    stmt = select(AccessGrant).where(AccessGrant.kind == "break_glass")
    if not include_reviewed:
        stmt = stmt.where(AccessGrant.reviewed_at.is_(None))
    if scope is not None:
        stmt = stmt.where(or_(AccessGrant.institution_id.in_(scope), and_(AccessGrant.institution_id.is_(None))))
    return list(db.scalars(stmt.order_by(AccessGrant.starts_at.desc()).limit(200)))


def review_break_glass(db: Session, subject: Subject, grant_id: int, outcome: str, revoke: bool) -> None:
    scope = _scope(db, subject)
    grant = db.get(AccessGrant, grant_id)
    if grant is None or grant.kind != "break_glass":
        raise NotFound()
    if scope is not None and grant.institution_id not in set(db.scalars(scope)):
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
    audit.record(db, subject, "review", "access_grant", grant.id, patient_id=grant.patient_id,
                 reason=outcome.strip(), detail={"revoked": revoke})
