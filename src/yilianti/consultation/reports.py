"""Who may see the teleconsultation reports, whose cases they cover, and over which period (API and pages alike)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.consultation import repository as queries
from yilianti.exceptions import Forbidden, InvalidInput
from yilianti.kit import clock


def require_report_viewer(subject: Subject) -> None:
    if not (subject.is_clinical or subject.has("system_admin", "alliance_admin", "institution_admin")):
        raise Forbidden()


def report_scope(db: Session, subject: Subject) -> list[int] | None:
    """Whose cases a report covers: all (system admin), an alliance's members, or the acting institution."""
    if subject.is_system_admin:
        return None
    ids: set[int] = set()
    for alliance_id in subject.alliance_admin_of:
        ids.update(queries.alliance_institutions(db, alliance_id))
    if subject.acting_institution_id is not None:
        ids.add(subject.acting_institution_id)
    return sorted(ids)


def report_period(start: date | None, end: date | None) -> tuple[date, date]:
    today = clock.today_local()
    end = end or today
    if start is None:  # the last twelve months, from the first of the month
        months = end.year * 12 + end.month - 1 - 11
        start = date(months // 12, months % 12 + 1, 1)
    if start > end:
        raise InvalidInput(fields={"start": "开始日期不能晚于结束日期"})
    return start, end
