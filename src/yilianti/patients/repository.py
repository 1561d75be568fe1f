"""Queries of the patient register (access rules come from authz.policy, never restated here)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, select, union
from sqlalchemy.orm import Session, selectinload

from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.kit import crypto, listing
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Institution
from yilianti.models.empi import MergeEvent
from yilianti.models.patient import Authority, CareKind, CareRelationship, Consent, Patient, PatientIdentifier

_INITIALS = re.compile(r"[A-Za-z]{1,16}")
_TAIL = re.compile(r"[0-9]{3}[0-9Xx]|[0-9]{4}")


def count_readable(db: Session, subject: Subject) -> int:
    """How many patients the subject may see: the readable ids counted, no patient row read
    (policy.readable_ids)."""
    return db.scalar(select(func.count()).select_from(policy.readable_ids(subject).subquery())) or 0


def patients_by_id(db: Session, ids: Iterable[int | None]) -> dict[int, Patient]:
    """The given patients by id, without an access check (the caller shows only rows it may)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {p.id: p for p in db.scalars(select(Patient).where(Patient.id.in_(wanted)))}


def search_clause(q: str) -> ColumnElement[bool]:
    """What a typed text matches: a part of the name; 拼音首字母 (letters: "zxm" → 赵小明, from the
    start); the last four characters of the phone or of an identifier (resident ID, record number); a whole
    identifier of any authority (resident ID, record number, insurance number) or phone.

    Each key is its own candidate query (the initials as an index range, the tails and whole values by their
    blind indexes), united, so the access rule is evaluated on the candidates only, not on every patient."""
    q = q.strip()
    if not q:
        return ~false()
    found: list[Select[int]] = [
        select(PatientIdentifier.patient_id).where(PatientIdentifier.value == q.upper())]
    digits = crypto.normalise("phone", q).isdigit()
    if digits:
        found.append(select(Patient.id).where(Patient.phone == q))
    else:  # a name has no digits
        found.append(select(Patient.id).where(Patient.name.contains(q, autoescape=True)))
    if _INITIALS.fullmatch(q):
        low = q.lower()
        found.append(select(Patient.id).where(Patient.name_initials >= low,
                                              Patient.name_initials < low[:-1] + chr(ord(low[-1]) + 1)))
    if _TAIL.fullmatch(q):
        tail = crypto.tail_index(q)
        found.append(select(Patient.id).where(Patient.phone_tail_bidx == tail))
        found.append(select(PatientIdentifier.patient_id).where(PatientIdentifier.tail_bidx == tail))
    return Patient.id.in_(union(*found))


def search_readable(db: Session, subject: Subject, q: str, *, limit: int = 50, offset: int = 0) -> list[Patient]:
    """Patients the subject may see matching `q` (search_clause), newest registration first."""
    stmt = select(Patient).where(policy.readable(subject))
    if q.strip():
        stmt = stmt.where(search_clause(q))
    return list(db.scalars(stmt.order_by(Patient.id.desc()).limit(limit).offset(offset)))


def search_among(db: Session, q: str, among: Select[Any] | None, *, limit: int = 50,
                 patient_id: int | None = None) -> list[Patient]:
    """Patients matching `q` (search_clause) — or the one `patient_id` — whose ids `among` selects (None: any),
    newest registration first: the audit log's picker, where the rule is the auditor's scope, not reading."""
    stmt = select(Patient).where(search_clause(q) if patient_id is None else Patient.id == patient_id)
    if among is not None:
        stmt = stmt.where(Patient.id.in_(among))
    return list(db.scalars(stmt.order_by(Patient.id.desc()).limit(limit)))


REGISTERED = ("here", "elsewhere")  # the patient list's "status": registered at the acting institution or not


def readable_statement(subject: Subject, lp: ListParams) -> Select[Any]:
    """The patient list: patients the subject may see, found by `lp.q` (search_clause), registered on the days
    `from`–`to`, here or elsewhere (`status`), newest registration first."""
    stmt = select(Patient).where(policy.readable(subject))
    if lp.q:
        stmt = stmt.where(search_clause(lp.q))
    stmt = lp.apply(stmt, day=Patient.created_at)
    if lp.status in REGISTERED:
        here = Patient.registered_by_institution_id == subject.acting_institution_id
        stmt = stmt.where(here if lp.status == "here" else ~here)
    return stmt.order_by(Patient.id.desc())


def readable_page(db: Session, subject: Subject, lp: ListParams) -> kit.Page[Patient]:
    """One page of the patient list with its total (an export: every row, no page cut)."""
    stmt = readable_statement(subject, lp)
    if lp.export or lp.q or lp.start or lp.end or lp.status in REGISTERED:
        return listing.page_or_export(db, stmt, lp)
    # unfiltered: the total is every readable patient, counted without reading them (count_readable)
    rows = kit.page(db, stmt, lp.page, lp.per_page, count=False)
    return kit.Page(rows.items, count_readable(db, subject), rows.page, rows.per_page)


def resident_ids(db: Session, patient_ids: list[int]) -> dict[int, str]:
    """The resident ID of each given patient that has one (the caller shows only rows it may, masked)."""
    if not patient_ids:
        return {}
    rows = db.execute(select(PatientIdentifier.patient_id, PatientIdentifier.value).where(
        kit.in_ids(PatientIdentifier.patient_id, patient_ids), PatientIdentifier.authority == Authority.resident_id))
    return {pid: value for pid, value in rows if value is not None}


def person_with_identifier(db: Session, authority: str, value: str) -> Patient | None:
    """The person holding this identifier (a resident ID is unique on the platform)."""
    return db.scalar(select(Patient).join(PatientIdentifier).where(
        PatientIdentifier.authority == authority, PatientIdentifier.value == value))


def identifier_owner(db: Session, authority: str, value: str) -> int | None:
    """The id of the person holding this identifier."""
    return db.scalar(select(PatientIdentifier.patient_id).where(
        PatientIdentifier.authority == authority, PatientIdentifier.value == value))


def identifier_owners(db: Session, authority: str, values: Iterable[str]) -> dict[str, int]:
    """`identifier_owner` for many values at once: value → the id of the person holding it (those held)."""
    wanted = sorted(set(values))
    out: dict[str, int] = {}
    for i in range(0, len(wanted), 1000):
        for ident in db.scalars(select(PatientIdentifier).where(PatientIdentifier.authority == authority,
                                                                PatientIdentifier.value.in_(wanted[i:i + 1000]))):
            if ident.value is not None:
                out[ident.value] = ident.patient_id
    return out


def identifiers_of(db: Session, patient_id: int) -> list[PatientIdentifier]:
    return list(db.scalars(select(PatientIdentifier).where(PatientIdentifier.patient_id == patient_id)))


def registered_care(db: Session, patient_id: int, institution_id: int) -> int | None:
    """The id of the institution's open registered-care relationship with the person."""
    return db.scalar(select(CareRelationship.id).where(
        CareRelationship.patient_id == patient_id, CareRelationship.institution_id == institution_id,
        CareRelationship.kind == CareKind.registered, CareRelationship.ended_at.is_(None)))


def consent_of(db: Session, patient_id: int, consent_id: int) -> Consent | None:
    return db.scalar(select(Consent).where(Consent.id == consent_id, Consent.patient_id == patient_id))


def patient_with_identifiers(db: Session, patient_id: int) -> Patient | None:
    """The person with their identifiers loaded."""
    return db.scalar(select(Patient).options(selectinload(Patient.identifiers)).where(Patient.id == patient_id))


def survivor_of(db: Session, merged_id: int) -> int | None:
    """The person a merge (not undone) last merged this one into."""
    return db.scalar(select(MergeEvent.survivor_id).where(
        MergeEvent.kind == "merge", MergeEvent.merged_id == merged_id, MergeEvent.undone_at.is_(None))
        .order_by(MergeEvent.id.desc()).limit(1))


def consents_of(db: Session, patient_id: int) -> list[Consent]:
    """The person's consents (with their alliance), newest first."""
    return list(db.scalars(select(Consent).options(selectinload(Consent.alliance))
                           .where(Consent.patient_id == patient_id).order_by(Consent.granted_at.desc())))


def care_of(db: Session, patient_id: int) -> list[tuple[CareRelationship, str]]:
    """The person's care relationships with their institution's name, oldest first."""
    return [(c, n) for c, n in db.execute(select(CareRelationship, Institution.name)
                                          .join(Institution, Institution.id == CareRelationship.institution_id)
                                          .where(CareRelationship.patient_id == patient_id)
                                          .order_by(CareRelationship.started_at))]


def identifier_pairs(db: Session, patient_id: int) -> list[tuple[str, str | None]]:
    """(authority, value) of each of the person's identifiers."""
    return [(a, v) for a, v in db.execute(select(PatientIdentifier.authority, PatientIdentifier.value)
                                          .where(PatientIdentifier.patient_id == patient_id))]


def holders_of(db: Session, value: str, authority: str | None = None, limit: int = 3) -> list[int]:
    """Ids of persons holding an identifier with this value (of this authority, when given), at most `limit`."""
    stmt = select(PatientIdentifier.patient_id).where(PatientIdentifier.value == value)
    if authority:
        stmt = stmt.where(PatientIdentifier.authority == authority)
    return list(db.scalars(stmt.limit(limit)))


def in_care_of(db: Session, patient_id: int, institution_id: int) -> bool:
    """Whether the institution has an open care relationship (of any kind) with the person."""
    return db.scalar(select(CareRelationship.id).where(
        CareRelationship.patient_id == patient_id, CareRelationship.institution_id == institution_id,
        CareRelationship.ended_at.is_(None)).limit(1)) is not None


def in_care_of_any(db: Session, patient_id: int, institutions: Any) -> bool:
    """Whether one of the institutions (ids, or a select of ids) has a care relationship with the person."""
    return db.scalar(select(CareRelationship.id).where(
        CareRelationship.patient_id == patient_id, CareRelationship.institution_id.in_(institutions)).limit(1)) is not None
