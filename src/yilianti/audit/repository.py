"""Every query of the audit log and of break-glass grants, scoped by who is looking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.exceptions import Forbidden
from yilianti.kit import clock
from yilianti.kit import repository as kit
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


def visible_scope(db: Session, subject: Subject) -> Select | None:  # type: ignore[type-arg]
    """None = everything; otherwise a select of institution ids whose events may be seen."""
    if subject.has("system_admin", "auditor"):
        return None
    if subject.has("alliance_admin") and subject.alliance_admin_of:
        return select(Membership.institution_id).where(Membership.alliance_id.in_(subject.alliance_admin_of))
    if subject.has("institution_admin") and subject.acting_institution_id:
        return select(Institution.id).where(Institution.id == subject.acting_institution_id)
    raise Forbidden()


def events_matching(db: Session, subject: Subject, f: AuditFilter, page: int = 1,
                    per_page: int = 100) -> kit.Page[AuditEvent]:
    """Events the subject may see that match `f`, newest first, one page (not counted: the log is large)."""
    scope = visible_scope(db, subject)
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
    return kit.page(db, stmt.order_by(AuditEvent.id.desc()), page, per_page, count=False, max_per_page=per_page)


def break_glass_to_review(db: Session, subject: Subject, include_reviewed: bool = False) -> list[AccessGrant]:
    scope = visible_scope(db, subject)
    stmt = select(AccessGrant).where(AccessGrant.kind == "break_glass")
    if not include_reviewed:
        stmt = stmt.where(AccessGrant.reviewed_at.is_(None))
    if scope is not None:
        stmt = stmt.where(or_(AccessGrant.institution_id.in_(scope), and_(AccessGrant.institution_id.is_(None))))
    return list(db.scalars(stmt.order_by(AccessGrant.starts_at.desc()).limit(200)))


def grant_scoped(db: Session, subject: Subject, grant_id: int) -> AccessGrant | None:
    """The break-glass grant `grant_id` if the subject's audit scope covers it, else None."""
    scope = visible_scope(db, subject)
    grant = db.get(AccessGrant, grant_id)
    if grant is None or grant.kind != "break_glass":
        return None
    if scope is not None and grant.institution_id not in set(db.scalars(scope)):
        return None
    return grant


def count_break_glass_to_review(db: Session) -> int:
    """Break-glass grants across the platform still waiting for an auditor's review."""
    return db.scalar(select(func.count()).select_from(AccessGrant).where(
        AccessGrant.needs_review.is_(True), AccessGrant.reviewed_at.is_(None))) or 0
