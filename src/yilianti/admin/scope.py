"""Which institutions an administrator may see and change (one place for admin scoping).

- system_admin: everything.
- institution_admin: the institution they are currently acting for (read and write).
- alliance_admin: every current member of their alliances, read-only.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.admin import repository
from yilianti.authz.subject import Subject
from yilianti.exceptions import Forbidden
from yilianti.kit import clock

ADMIN_ROLES = ("system_admin", "alliance_admin", "institution_admin")


def is_admin(subject: Subject) -> bool:
    return subject.has(*ADMIN_ROLES)


def require_admin(subject: Subject) -> Subject:
    if not is_admin(subject):
        raise Forbidden("此功能仅限管理员")
    return subject


def alliance_members(db: Session, alliance_ids: frozenset[int] | set[int]) -> set[int]:
    if not alliance_ids:
        return set()
    return repository.current_members(db, alliance_ids, clock.today_local())


def readable_institutions(db: Session, subject: Subject) -> set[int] | None:
    """Institution ids whose staff this administrator may list; None means all."""
    if subject.is_system_admin:
        return None
    ids: set[int] = set()
    if subject.has("institution_admin") and subject.acting_institution_id:
        ids.add(subject.acting_institution_id)
    if subject.has("alliance_admin"):
        ids |= alliance_members(db, subject.alliance_admin_of)
    return ids


def writable_institutions(subject: Subject) -> set[int] | None:
    """Institution ids whose staff this administrator may change; None means all."""
    if subject.is_system_admin:
        return None
    if subject.has("institution_admin") and subject.acting_institution_id:
        return {subject.acting_institution_id}
    return set()


def can_write(subject: Subject, institution_id: int | None) -> bool:
    allowed = writable_institutions(subject)
    return allowed is None or (institution_id is not None and institution_id in allowed)


def can_read(db: Session, subject: Subject, institution_id: int | None) -> bool:
    allowed = readable_institutions(db, subject)
    return allowed is None or (institution_id is not None and institution_id in allowed)
