"""Every query of the audit log and of break-glass grants, scoped by who is looking."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import MetaData, Row, Select, Table, Text, and_, cast, func, or_, select, text, union_all
from sqlalchemy.orm import Session, aliased

from yilianti.archive import repository as archive
from yilianti.authz.subject import Subject
from yilianti.exceptions import Forbidden
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import Institution, Membership
from yilianti.models.audit import AuditEvent, AuditSeal
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
    if subject.audits_everything:
        return None
    alliances = (subject.alliance_admin_of if subject.has("alliance_admin") else frozenset()) \
        | subject.auditor_of_alliances
    # an auditor's role without an alliance was given at the acting institution (a platform one audits_everything)
    own = subject.acting_institution_id if subject.has("institution_admin") or (
        subject.has("auditor") and not subject.auditor_of_alliances) else None
    if not alliances and own is None:
        raise Forbidden()
    within = [Institution.id.in_(select(Membership.institution_id).where(Membership.alliance_id.in_(alliances)))]
    return select(Institution.id).where(or_(*within, *([Institution.id == own] if own is not None else [])))


def patients_in_scope(db: Session, subject: Subject) -> Select[Any] | None:
    """The ids of patients named by events the subject may see (None: every patient, for whoever audits
    everything) — whom the audit log's patient filter may find."""
    scope = visible_scope(db, subject)
    if scope is None:
        return None
    return select(AuditEvent.patient_id).where(AuditEvent.acting_institution_id.in_(scope),
                                               AuditEvent.patient_id.is_not(None))


def events_statement(db: Session, subject: Subject, f: AuditFilter, q: str = "", *,
                     archived: bool = False) -> Select[Any]:
    """Events the subject may see that match `f` (and `q`: a username or an object's id), newest first; with
    `archived`, the months `yilianti archive` moved out are searched too (asked for: they are many)."""
    scope = visible_scope(db, subject)
    E: Any = AuditEvent  # noqa: N806
    both = _with_archive(db) if archived else None
    if both is not None:
        E = aliased(AuditEvent, both)  # noqa: N806
    stmt = select(E)
    if scope is not None:
        stmt = stmt.where(E.acting_institution_id.in_(scope))
    if f.username:
        stmt = stmt.where(E.username == f.username.strip().lower())
    if q.strip():
        stmt = stmt.where(or_(E.username == q.strip().lower(), E.resource_id == q.strip()))
    if f.action:
        stmt = stmt.where(E.action == f.action)
    if f.resource_type:
        stmt = stmt.where(E.resource_type == f.resource_type)
    if f.patient_id:
        stmt = stmt.where(E.patient_id == f.patient_id)
    if f.institution_id:
        stmt = stmt.where(E.acting_institution_id == f.institution_id)
    tz = clock.SHANGHAI
    if f.date_from:
        stmt = stmt.where(E.at >= datetime.combine(f.date_from, time.min, tz))
    if f.date_to:
        stmt = stmt.where(E.at < datetime.combine(f.date_to + timedelta(days=1), time.min, tz))
    return stmt.order_by(E.id.desc())


def events_matching(db: Session, subject: Subject, f: AuditFilter, page: int = 1, per_page: int = 100, *,
                    q: str = "", count: bool = False, archived: bool = False) -> kit.Page[AuditEvent]:
    """One page of `events_statement`; with `count`, the total too (the list page counts, an export does not)."""
    return kit.page(db, events_statement(db, subject, f, q, archived=archived), page, per_page, count=count,
                    max_per_page=per_page)


def break_glass_to_review(db: Session, subject: Subject, include_reviewed: bool = False) -> list[AccessGrant]:
    return list(db.scalars(break_glass_statement(db, subject, include_reviewed)))


def count_break_glass_for(db: Session, subject: Subject) -> int:
    """Break-glass grants in the subject's audit scope still waiting for review (the list's own count)."""
    return kit.count(db, break_glass_statement(db, subject))


def break_glass_statement(db: Session, subject: Subject, include_reviewed: bool = False) -> Select[Any]:
    scope = visible_scope(db, subject)
    stmt = select(AccessGrant).where(AccessGrant.kind == "break_glass")
    if not include_reviewed:
        stmt = stmt.where(AccessGrant.reviewed_at.is_(None))
    if scope is not None:
        stmt = stmt.where(or_(AccessGrant.institution_id.in_(scope), and_(AccessGrant.institution_id.is_(None))))
    return stmt.order_by(AccessGrant.starts_at.desc())


def grant_scoped(db: Session, subject: Subject, grant_id: int) -> AccessGrant | None:
    """The break-glass grant `grant_id` if the subject's audit scope covers it, else None."""
    scope = visible_scope(db, subject)
    grant = db.get(AccessGrant, grant_id)
    if grant is None or grant.kind != "break_glass":
        return None
    if scope is not None and grant.institution_id not in set(db.scalars(scope)):
        return None
    return grant



# ---------------------------------------------------------------- the hash chain's queries (audit/chain.py)

_T = AuditEvent.__table__.c
# what the chain digests, in this order: a sealed row's digest depends on these names and their order, so the
# list is written out rather than taken from the table (a column added to the model does not change old digests)
CHAIN_COLUMN_NAMES = ("id", "at", "user_id", "username", "acting_institution_id", "action", "resource_type",
                      "resource_id", "patient_id", "access_basis", "reason", "detail", "ip", "channel")


def chain_columns(table: Table) -> tuple[Any, ...]:
    """CHAIN_COLUMN_NAMES of the live audit table or of the archive's copy of it; the detail as the text stored
    (JSON, not JSONB, keeps it as written: no parse and re-serialise)."""
    return tuple(cast(table.c.detail, Text).label("detail") if name == "detail" else table.c[name]
                 for name in CHAIN_COLUMN_NAMES)


CHAIN_COLUMNS = chain_columns(typing.cast(Table, AuditEvent.__table__))
_RUNNING = text("SELECT backend_xid::text::bigint FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()")
_LAST_ID = text("SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('audit_event', 'id')::regclass), 0)")


def running_writers(db: Session) -> frozenset[int]:
    """PostgreSQL: the transaction ids now writing in this database (other than ours)."""
    return frozenset(db.scalars(_RUNNING))


def last_audit_id_given(db: Session) -> int:
    """PostgreSQL: the last audit id handed out, committed or not."""
    return int(db.scalar(_LAST_ID) or 0)


def newest_audit_id(db: Session) -> int | None:
    return db.scalar(select(func.max(AuditEvent.id)))


def lock_chain(db: Session) -> AuditSeal | None:
    """The chain's newest link, with the chain locked for this transaction (one sealer at a time)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("LOCK TABLE audit_seal IN EXCLUSIVE MODE"))
    return db.scalar(select(AuditSeal).order_by(AuditSeal.id.desc()).limit(1))


def rows_to_seal(db: Session, after: int, upto: int, limit: int) -> list[Row[Any]]:
    return list(db.execute(select(*CHAIN_COLUMNS).where(_T.id > after, _T.id <= upto).order_by(_T.id).limit(limit)))


def newest_sealed_id(db: Session) -> int:
    return db.scalar(select(func.max(AuditSeal.to_id))) or 0


def link(db: Session, link_id: int) -> AuditSeal | None:
    return db.get(AuditSeal, link_id)


def newest_link_id(db: Session) -> int:
    return db.scalar(select(func.max(AuditSeal.id))) or 0


def links_after(db: Session, link_id: int) -> list[AuditSeal]:
    return list(db.scalars(select(AuditSeal).where(AuditSeal.id > link_id).order_by(AuditSeal.id)))


def _chunks(db: Session, stmt: Any, key: Any, size: int, last: int = 0) -> Iterator[Row[Any]]:
    while True:
        batch = db.execute(stmt.where(key > last).order_by(key).limit(size)).all()
        yield from batch
        if len(batch) < size:
            return
        last = batch[-1][0]


def _archived_table(db: Session) -> Table | None:
    """The archive's audit table (`yilianti archive` moved old months there), when there is one."""
    live = typing.cast(Table, AuditEvent.__table__)
    if db.get_bind().dialect.name != "postgresql" or not archive.archive_exists(db.connection(), live.name):
        return None
    return live.to_metadata(MetaData(), schema=archive.ARCHIVE)


def _with_archive(db: Session) -> Any:
    """The live audit rows and the archived ones as one subquery (None: nothing archived)."""
    archived = _archived_table(db)
    if archived is None:
        return None
    live = typing.cast(Table, AuditEvent.__table__)
    return union_all(select(*live.c), select(*archived.c)).subquery("audit_with_archive")


def all_chain_rows(db: Session, after: int = 0, size: int = 10_000) -> Iterator[Row[Any]]:
    """Every audit row (CHAIN_COLUMNS) with an id above `after`, in id order, read in pages — the archived
    months' rows too, so the chain verifies over the whole history."""
    archived = _archived_table(db)
    if archived is None:
        return _chunks(db, select(*CHAIN_COLUMNS), _T.id, size, after)
    both = union_all(select(*CHAIN_COLUMNS), select(*chain_columns(archived))).subquery()
    return _chunks(db, select(both), both.c.id, size, after)


def all_links(db: Session, after: int = 0, size: int = 1_000) -> Iterator[AuditSeal]:
    """Every link with an id above `after`, in id order, read in pages."""
    last = after
    while True:
        batch = list(db.scalars(select(AuditSeal).where(AuditSeal.id > last).order_by(AuditSeal.id).limit(size)))
        yield from batch
        if len(batch) < size:
            return
        last = batch[-1].id


def recorded_since(db: Session, since: datetime, *, user_id: int | None, action: str, resource_type: str,
                   resource_id: str, patient_id: int | None) -> bool:
    """Whether this user's action on this resource (of this patient) was audited since `since`."""
    return db.scalar(select(AuditEvent.id).where(
        AuditEvent.patient_id == patient_id, AuditEvent.at >= since,
        AuditEvent.user_id == user_id, AuditEvent.action == action,
        AuditEvent.resource_type == resource_type, AuditEvent.resource_id == resource_id).limit(1)) is not None


def events_of_patients(db: Session, patient_ids: Iterable[int], actions: Iterable[str] | None = None,
                       limit: int = 200, offset: int = 0) -> list[AuditEvent]:
    """Audit events about these patients (of these actions), newest first."""
    stmt = select(AuditEvent).where(AuditEvent.patient_id.in_(set(patient_ids)))
    if actions is not None:
        stmt = stmt.where(AuditEvent.action.in_(tuple(actions)))
    return list(db.scalars(stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit).offset(offset)))
