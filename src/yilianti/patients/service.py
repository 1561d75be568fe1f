"""Registration at a member, identifiers, consent; every read goes through authz.policy."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from yilianti.alliance.repository import has_membership
from yilianti.audit import repository as audit_repo
from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.empi import online
from yilianti.empi import repository as empi_repo
from yilianti.empi import service as empi
from yilianti.empi.normalise import name_initials
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound, parse_input
from yilianti.kit import clock, crypto
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Institution
from yilianti.models.patient import (
    Authority,
    CareKind,
    CareRelationship,
    Consent,
    Patient,
    PatientIdentifier,
    mrn_authority,
)
from yilianti.patients import repository as repo
from yilianti.patients.schemas import ConsentIn, RegistrationIn

__all__ = ["RegistrationIn", "ConsentIn", "register", "Registered", "parse_registration"]


@dataclass
class Registered:
    patient: Patient
    existing: bool  # the person was already known: a care relationship was added instead
    link: str = "new"  # resident_id | score | new (how the EMPI placed this registration)
    review_candidates: int = 0  # possible duplicates queued for a steward


def parse_registration(data: dict[str, object]) -> RegistrationIn:
    """Form data → validated input; errors become field-level messages."""
    return parse_input(RegistrationIn, data)


def set_search_keys(patient: Patient) -> None:
    """The picker's keys of a person (拼音首字母, the phone's last four as a blind index); set wherever a
    person's name or phone is written."""
    patient.name_initials = name_initials(patient.name or "")
    patient.phone_tail_bidx = crypto.tail_index(patient.phone)


def _require_registrar(subject: Subject) -> int:
    if not subject.has("doctor", "nurse", "coordinator") or subject.acting_institution_id is None:
        raise Forbidden("只有医生、护士或转诊协调员可以登记患者")
    return subject.acting_institution_id


def register(db: Session, subject: Subject, data: RegistrationIn) -> Registered:
    """Register a patient at the acting institution, matched against the master patient index.

    A resident ID already on the platform is the same person (deterministic rule); otherwise
    empi/online.py scores blocked candidates: above the auto-link threshold the registration
    joins that person, in the review band a new person is created and a review-queue entry
    written. A known person's institution gets a care relationship and its record number;
    nothing is duplicated. Every registration leaves a source record (`patient_record`).
    """
    inst_id = _require_registrar(subject)
    now = clock.now()
    demo = empi.demographics_of(data)
    online.lock(db, demo)  # PostgreSQL: the same new person registered twice at once ends as one
    existing: Patient | None = None
    method, score = "new", None
    disputed: list[online.Scored] = []  # a resident ID already held by a person of another name
    if data.resident_id:
        existing = repo.person_with_identifier(db, Authority.resident_id, data.resident_id)
        if existing is not None and not empi.same_name(existing.name, data.name):
            # neither linked nor revealed (an error here would tell whose ID it is): a new person without the
            # ID, and the pair goes to identity review (the EMPI review queue) for a steward to decide
            other = empi_repo.first_record_of(db, existing.id)
            disputed = [online.Scored(existing.id, other.id, 0.0, {"resident_id": 1.0})] if other else []
            existing = None
        elif existing is not None:
            method = "resident_id"
    decision = None
    if existing is None and not disputed:
        decision = online.decide(db, demo)
        if decision.link_to is not None:
            existing = kit.get(db, Patient, decision.link_to)
            method, score = "score", decision.score
    if data.mrn:
        owner = repo.identifier_owner(db, mrn_authority(inst_id), data.mrn)
        if owner is not None and (existing is None or owner != existing.id):
            raise InvalidInput(fields={"mrn": "本机构已有患者使用该病历号"})
    for authority, value, field in ((Authority.insurance, data.insurance_no, "insurance_no"),
                                    (Authority.health_card, data.health_card_no, "health_card_no")):
        if value:
            owner = repo.identifier_owner(db, authority, value)
            if owner is not None and (existing is None or owner != existing.id):
                raise InvalidInput(fields={field: "该号码已属于另一位患者"})
    if data.consent_scope == "alliance" and not has_membership(db, data.consent_alliance_id, inst_id):
        raise InvalidInput(fields={"consent_alliance_id": "本机构不是该医联体成员"})

    if existing is not None:
        patient = existing
    else:
        inst = kit.get(db, Institution, inst_id)
        patient = Patient(
            name=data.name, sex=data.sex, birth_date=data.birth_date, phone=data.phone, address=data.address,
            province=inst.province if inst else None, city=inst.city if inst else None,
            guardian_name=data.guardian_name, guardian_relation=data.guardian_relation,
            guardian_phone=data.guardian_phone, registered_by_institution_id=inst_id,
        )
        set_search_keys(patient)
        db.add(patient)
        db.flush()
    identifiers: list[tuple[str, str | None]] = [
        (Authority.resident_id, None if disputed else data.resident_id), (Authority.insurance, data.insurance_no),
        (Authority.health_card, data.health_card_no), (mrn_authority(inst_id), data.mrn)]
    # a person created just now has no identifiers or care relationships yet: no need to ask
    have = {(i.authority, i.value) for i in repo.identifiers_of(db, patient.id)} if existing else set()
    for id_authority, id_value in identifiers:
        if id_value and (id_authority, id_value) not in have:
            db.add(PatientIdentifier(patient_id=patient.id, authority=id_authority, value=id_value,
                                     tail_bidx=crypto.tail_index(id_value)))
    has_care = repo.registered_care(db, patient.id, inst_id) if existing else None
    if has_care is None:
        db.add(CareRelationship(patient_id=patient.id, institution_id=inst_id, kind=CareKind.registered,
                                started_at=now))
    if data.consent_scope != "none":
        _grant_consent(db, subject, patient.id, ConsentIn(scope=data.consent_scope,
                                                          alliance_id=data.consent_alliance_id))
    db.flush()
    rec = empi.save_record(db, patient.id, inst_id, demo, method, score)
    queued = empi.queue_candidates(db, rec, disputed or (decision.review if decision else []))
    audit.record(db, subject, "update" if existing else "create", "patient", patient.id, patient_id=patient.id,
                 basis="own", detail={"registered_at": inst_id, "existing": existing is not None,
                                      "link": method, "score": score, "review_candidates": queued})
    return Registered(patient, existing is not None, method, queued)


def _grant_consent(db: Session, subject: Subject, patient_id: int, data: ConsentIn) -> Consent:
    consent = Consent(patient_id=patient_id, scope=data.scope,
                      alliance_id=data.alliance_id if data.scope == "alliance" else None,
                      granted_at=clock.now(), recorded_by_user_id=subject.user_id,
                      recorded_at_institution_id=subject.acting_institution_id, note=data.note)
    db.add(consent)
    db.flush()
    audit.record(db, subject, "consent_grant", "consent", consent.id, patient_id=patient_id,
                 detail={"scope": data.scope, "alliance_id": data.alliance_id})
    return consent


def grant_consent(db: Session, subject: Subject, patient_id: int, data: ConsentIn) -> Consent:
    access = policy.require_patient(db, subject, patient_id, action="read", resource_type="consent")
    if access.basis not in ("own",):
        raise Forbidden("只有与患者有诊疗关系的机构可以记录授权")
    if data.scope == "alliance" and not has_membership(db, data.alliance_id, subject.acting_institution_id):
        raise InvalidInput(fields={"alliance_id": "本机构不是该医联体成员"})
    return _grant_consent(db, subject, patient_id, data)


def withdraw_consent(db: Session, subject: Subject, patient_id: int, consent_id: int) -> None:
    policy.require_patient(db, subject, patient_id, action="read", resource_type="consent")
    consent = repo.consent_of(db, patient_id, consent_id)
    if consent is None:
        raise NotFound()
    if consent.withdrawn_at is not None:
        raise Conflict("该授权已撤回")
    consent.withdrawn_at = clock.now()
    audit.record(db, subject, "consent_withdraw", "consent", consent.id, patient_id=patient_id)


def get_patient(db: Session, subject: Subject, patient_id: int) -> tuple[Patient, policy.PatientAccess]:
    access = policy.require_patient(db, subject, patient_id)
    patient = repo.patient_with_identifiers(db, patient_id)
    if patient is None:
        raise NotFound()
    return patient, access


_NUMBER = re.compile(r"[0-9][0-9A-Za-z\- ]{4,}[0-9A-Za-z]")


def masked_query(q: str) -> str:
    """A search text as kept in the audit log: any ID- or phone-like run keeps only its last four
    characters (the audit log must not become a list of resident IDs and phone numbers in clear)."""
    return _NUMBER.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], q)


def merged_into(db: Session, subject: Subject, patient_id: int) -> int | None:
    """For a merged person's old id: the surviving person (following later merges), if the subject
    may see them — the redirect is audited; None if the id is not a merged person or the survivor
    is not visible (the caller answers 404 as before)."""
    patient = kit.get(db, Patient, patient_id)
    if patient is None or patient.active:
        return None
    current, seen = patient_id, {patient_id}
    while True:
        survivor = repo.survivor_of(db, current)
        if survivor is None or survivor in seen:
            break
        seen.add(survivor)
        current = survivor
    if current == patient_id:
        return None
    access = policy.decide(db, subject, current)
    if access is None:
        return None
    audit.record(db, subject, "merged_redirect", "patient", patient_id, patient_id=current, basis=access.basis,
                 detail={"merged_id": patient_id, "survivor_id": current})
    return current


def search(db: Session, subject: Subject, q: str = "", limit: int = 50, offset: int = 0) -> list[Patient]:
    """Patients the acting institution may see, found by name, 拼音首字母, the last four characters of
    the phone or resident ID, a whole identifier (resident ID, record number...) or phone; audited."""
    q = q.strip()
    rows = repo.search_readable(db, subject, q, limit=limit, offset=offset)
    audit.record(db, subject, "search", "patient", None,
                 detail={"q": masked_query(q), "results": [p.id for p in rows]})
    return rows


def find_for_audit(db: Session, subject: Subject, q: str = "", *, patient_id: int | None = None,
                   limit: int = 50) -> list[Patient]:
    """Patients an auditor may filter the audit log by: found as the patient search finds them (or the one
    `patient_id`), among those named by events in the auditor's scope (audit.repository.patients_in_scope) — not
    the clinical reading rule, which an auditor has no part in. Audited as a search from the audit log."""
    rows = repo.search_among(db, q.strip(), audit_repo.patients_in_scope(db, subject), limit=limit,
                             patient_id=patient_id)
    audit.record(db, subject, "search", "patient", None,
                 detail={"view": "audit", "q": masked_query(q.strip()) if patient_id is None else None,
                         "results": [p.id for p in rows]})
    return rows


def patients_page(db: Session, subject: Subject, lp: ListParams, *, reads: Session | None = None) -> kit.Page[Patient]:
    """The patient list under its filters (search, registration days, registered here or elsewhere), with the
    total, read from `reads` (the read replica, auth/deps.ReadDB) when given; audited on the primary as a search
    (an export as an export, with how many rows left the platform)."""
    result = repo.readable_page(reads or db, subject, lp)
    detail: dict[str, object] = {"q": masked_query(lp.q), "results": [p.id for p in result.items]}
    if lp.export:
        detail = {"q": masked_query(lp.q), "rows": len(result.items)}
    audit.record(db, subject, "export" if lp.export else "search", "patient", None, detail=detail)
    return result


def picked(db: Session, subject: Subject, patient_id: int | None) -> Patient | None:
    """The patient a form has chosen, if the acting institution may see them (None otherwise: an id in a
    form or URL never shows anyone else). Audited as a read of the patient's demographics."""
    if patient_id is None:
        return None
    access = policy.decide(db, subject, patient_id)
    if access is None:
        return None
    patient = kit.get(db, Patient, patient_id)
    if patient is None or not patient.active:
        return None
    audit.record(db, subject, "read", "patient", patient_id, patient_id=patient_id, basis=access.basis,
                 detail={"view": "picker"})
    return patient
