"""Queries of the patient register (access rules come from authz.policy, never restated here)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.orm import Session

from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.kit import crypto
from yilianti.models.patient import Authority, Patient, PatientIdentifier

_INITIALS = re.compile(r"[A-Za-z]{1,16}")
_TAIL = re.compile(r"[0-9]{3}[0-9Xx]|[0-9]{4}")


def count_readable(db: Session, subject: Subject) -> int:
    """How many patients the subject may see."""
    return db.scalar(select(func.count()).select_from(Patient).where(policy.readable(subject))) or 0


def patients_by_id(db: Session, ids: Iterable[int | None]) -> dict[int, Patient]:
    """The given patients by id, without an access check (the caller shows only rows it may)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {p.id: p for p in db.scalars(select(Patient).where(Patient.id.in_(wanted)))}


def search_clause(q: str) -> ColumnElement[bool]:
    """What a typed text matches: a part of the name; 拼音首字母 (letters: "zxm" → 赵小明, from the
    start); the last four characters of the phone or of an identifier (resident ID, record number); a whole identifier of
    any authority (resident ID, record number, insurance number) or phone."""
    q = q.strip()
    ident = select(PatientIdentifier.patient_id).where(PatientIdentifier.value == q.upper())
    found: list[ColumnElement[bool]] = [Patient.name.contains(q, autoescape=True), Patient.id.in_(ident)]
    if crypto.normalise("phone", q).isdigit():
        found.append(Patient.phone == q)
    if _INITIALS.fullmatch(q):
        found.append(Patient.name_initials.startswith(q.lower(), autoescape=True))
    if _TAIL.fullmatch(q):
        tail = crypto.tail_index(q)
        found.append(Patient.phone_tail_bidx == tail)
        found.append(Patient.id.in_(select(PatientIdentifier.patient_id).where(PatientIdentifier.tail_bidx == tail)))
    return or_(*found) if q else ~false()


def search_readable(db: Session, subject: Subject, q: str, *, limit: int = 50, offset: int = 0) -> list[Patient]:
    """Patients the subject may see matching `q` (search_clause), newest registration first."""
    stmt = select(Patient).where(policy.readable(subject))
    if q.strip():
        stmt = stmt.where(search_clause(q))
    return list(db.scalars(stmt.order_by(Patient.id.desc()).limit(limit).offset(offset)))


def resident_ids(db: Session, patient_ids: list[int]) -> dict[int, str]:
    """The resident ID of each given patient that has one (the caller shows only rows it may, masked)."""
    if not patient_ids:
        return {}
    rows = db.execute(select(PatientIdentifier.patient_id, PatientIdentifier.value).where(
        PatientIdentifier.patient_id.in_(patient_ids), PatientIdentifier.authority == Authority.resident_id))
    return {pid: value for pid, value in rows if value is not None}
