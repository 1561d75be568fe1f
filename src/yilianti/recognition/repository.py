"""Queries of the recognition catalogue and decisions, for its pages and API routes.

Access rules are not here: patients come through `authz.policy.readable`, decisions through
`recognition.service.get_decision` (which calls `policy.require_patient`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.models.alliance import Department, Institution
from yilianti.models.patient import Patient
from yilianti.models.recognition import (
    QualifiedInstitution,
    RecognitionDecision,
    RecognitionItem,
    RecognitionItemCode,
    RecognitionRule,
    RecognitionScope,
    RecognitionScopeArea,
)

# ------------------------------------------------------------------------------------ catalogue


def active_items(db: Session) -> list[RecognitionItem]:
    """Active items by kind and code (for pickers)."""
    return list(db.scalars(select(RecognitionItem).where(RecognitionItem.active.is_(True))
                           .order_by(RecognitionItem.kind, RecognitionItem.code)))


def all_items(db: Session) -> list[RecognitionItem]:
    """Every item, active first, then by kind and code."""
    return list(db.scalars(select(RecognitionItem).order_by(RecognitionItem.active.desc(), RecognitionItem.kind,
                                                            RecognitionItem.code)))


def all_scopes(db: Session) -> list[RecognitionScope]:
    return list(db.scalars(select(RecognitionScope).order_by(RecognitionScope.id)))


def active_scopes(db: Session) -> list[RecognitionScope]:
    return list(db.scalars(select(RecognitionScope).where(RecognitionScope.active.is_(True))
                           .order_by(RecognitionScope.id)))


def scope_area_labels(db: Session) -> dict[int, list[str]]:
    """Each scope's areas as 省 or 省·市 labels."""
    areas: dict[int, list[str]] = {}
    for a in db.scalars(select(RecognitionScopeArea)):
        areas.setdefault(a.scope_id, []).append(a.province + (f"·{a.city}" if a.city else ""))
    return areas


def rules_of_item(db: Session, item_id: int) -> list[RecognitionRule]:
    return list(db.scalars(select(RecognitionRule).where(RecognitionRule.item_id == item_id)
                           .order_by(RecognitionRule.scope_id)))


def qualifications_with_institution(db: Session) -> list[tuple[QualifiedInstitution, str]]:
    """Every QC qualification with its institution's name ("" when there is none), by institution and item."""
    return [(q, name or "") for q, name in db.execute(
        select(QualifiedInstitution, Institution.name)
        .outerjoin(Institution, Institution.id == QualifiedInstitution.institution_id)
        .order_by(QualifiedInstitution.institution_id, QualifiedInstitution.item_id))]


def qualifications_of_item(db: Session, item_id: int) -> list[tuple[QualifiedInstitution, str]]:
    """The item's QC qualifications with their institution's name ("" when there is none), by institution
    and start of the period."""
    return [(q, name or "") for q, name in db.execute(
        select(QualifiedInstitution, Institution.name)
        .outerjoin(Institution, Institution.id == QualifiedInstitution.institution_id)
        .where(QualifiedInstitution.item_id == item_id)
        .order_by(QualifiedInstitution.institution_id, QualifiedInstitution.qc_from))]


def local_codes_of_item(db: Session, item_id: int) -> list[str]:
    return [c.code for c in db.scalars(select(RecognitionItemCode).where(RecognitionItemCode.item_id == item_id,
                                                                         RecognitionItemCode.system == "local")
                                       .order_by(RecognitionItemCode.id))]


# ------------------------------------------------------------------------------------ decisions


def readable_patients(db: Session, subject: Subject, limit: int = 200) -> list[Patient]:
    """The newest patients the subject may see (`policy.readable`), for the lookup form."""
    return list(db.scalars(select(Patient).where(policy.readable(subject)).order_by(Patient.id.desc()).limit(limit)))


@dataclass
class DecisionContext:
    item: RecognitionItem | None
    patient: Patient | None
    source: Institution | None
    scope: RecognitionScope | None
    department: Department | None


def decision_context(db: Session, decision: RecognitionDecision) -> DecisionContext:
    """What a decision page shows besides the decision: its item, patient, the institution whose result was
    reused, the scope that recognised it and the ordering department — in one query."""
    row = db.execute(
        select(RecognitionItem, Patient, Institution, RecognitionScope, Department)
        .select_from(RecognitionDecision)
        .outerjoin(RecognitionItem, RecognitionItem.id == RecognitionDecision.item_id)
        .outerjoin(Patient, Patient.id == RecognitionDecision.patient_id)
        .outerjoin(Institution, Institution.id == RecognitionDecision.reused_institution_id)
        .outerjoin(RecognitionScope, RecognitionScope.id == RecognitionDecision.scope_id)
        .outerjoin(Department, Department.id == RecognitionDecision.department_id)
        .where(RecognitionDecision.id == decision.id)).one_or_none()
    if row is None:
        return DecisionContext(None, None, None, None, None)
    return DecisionContext(*row)


def scope_codes(db: Session) -> dict[int, str]:
    return {s.id: s.code for s in db.scalars(select(RecognitionScope))}


def rules_of(db: Session, item_id: int | None = None) -> list[RecognitionRule]:
    """Every rule, or the item's rules (unordered)."""
    stmt = select(RecognitionRule)
    if item_id is not None:
        stmt = stmt.where(RecognitionRule.item_id == item_id)
    return list(db.scalars(stmt))


def rule_of(db: Session, item_id: int, scope_code: str) -> RecognitionRule | None:
    """The item's rule for the scope with that code."""
    return db.scalar(select(RecognitionRule).join(RecognitionScope, RecognitionScope.id == RecognitionRule.scope_id)
                     .where(RecognitionRule.item_id == item_id, RecognitionScope.code == scope_code))


def qualifications(db: Session, item_id: int | None = None, limit: int = 5000) -> list[QualifiedInstitution]:
    """QC qualifications (all, or of one item) by item, institution and start."""
    q = select(QualifiedInstitution).order_by(QualifiedInstitution.item_id, QualifiedInstitution.institution_id,
                                              QualifiedInstitution.qc_from)
    if item_id is not None:
        q = q.where(QualifiedInstitution.item_id == item_id)
    return list(db.scalars(q.limit(limit)))
