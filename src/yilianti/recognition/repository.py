"""Queries of the recognition catalogue and decisions, for its pages and API routes.

Access rules are not here: patients come through `authz.policy.readable`, decisions through
`recognition.service.get_decision` (which calls `policy.require_patient`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from yilianti.alliance.repository import current_on
from yilianti.diagnostics.states import RESULTED
from yilianti.models.alliance import Department, Institution, Membership
from yilianti.models.auth import User
from yilianti.models.diagnostics import DiagnosticItem, DiagnosticOrder, ItemPrice, LabObservation
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
from yilianti.models.workforce import Practitioner

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


# ------------------------------------------------------------------------------------ for the service


def active_item_by_code(db: Session, code: str) -> RecognitionItem | None:
    """The active item with this code of its own, else the active item a mapped code points to."""
    item = db.scalar(select(RecognitionItem).where(RecognitionItem.code == code, RecognitionItem.active.is_(True)))
    if item is not None:
        return item
    return db.scalar(select(RecognitionItem).join(RecognitionItemCode, RecognitionItemCode.item_id == RecognitionItem.id)
                     .where(RecognitionItemCode.code == code, RecognitionItem.active.is_(True)).limit(1))


def mapped_codes(db: Session, item_id: int) -> list[str]:
    """The catalogue / LOINC / local codes mapped to the item (not its own code)."""
    return list(db.scalars(select(RecognitionItemCode.code).where(RecognitionItemCode.item_id == item_id)))


def active_scopes_with_areas(db: Session) -> list[tuple[RecognitionScope, str | None, str | None]]:
    """Active scopes by id, each with its areas' (province, city) — one row per area, (None, None) without."""
    return [(s, p, c) for s, p, c in db.execute(
        select(RecognitionScope, RecognitionScopeArea.province, RecognitionScopeArea.city)
        .outerjoin(RecognitionScopeArea, RecognitionScopeArea.scope_id == RecognitionScope.id)
        .where(RecognitionScope.active.is_(True)).order_by(RecognitionScope.id))]


def institution_area_and_alliances(db: Session, institution_id: int,
                                   on: date) -> list[tuple[str | None, str | None, int | None]]:
    """(province, city, alliance id) of the institution, one row per membership in force on `on` (one row with
    no alliance when it has none; no rows when there is no such institution)."""
    return [(p, c, a) for p, c, a in db.execute(
        select(Institution.province, Institution.city, Membership.alliance_id)
        .outerjoin(Membership, and_(Membership.institution_id == Institution.id, current_on(on)))
        .where(Institution.id == institution_id))]


def scope_by_code(db: Session, code: str) -> RecognitionScope | None:
    return db.scalar(select(RecognitionScope).where(RecognitionScope.code == code))


def rule_of_scope(db: Session, item_id: int, scope_id: int) -> RecognitionRule | None:
    return db.scalar(select(RecognitionRule).where(RecognitionRule.item_id == item_id,
                                                   RecognitionRule.scope_id == scope_id))


def items_by_code(db: Session, codes: set[str]) -> dict[str, RecognitionItem]:
    """Active items by code: their own codes first, then mapped codes not already taken."""
    if not codes:
        return {}
    out = {i.code: i for i in db.scalars(select(RecognitionItem).where(RecognitionItem.code.in_(codes),
                                                                      RecognitionItem.active.is_(True)))}
    for code, item in db.execute(select(RecognitionItemCode.code, RecognitionItem)
                                 .join(RecognitionItem, RecognitionItem.id == RecognitionItemCode.item_id)
                                 .where(RecognitionItemCode.code.in_(codes), RecognitionItem.active.is_(True))):
        out.setdefault(code, item)
    return out


def qualifications_with_rules(db: Session, institution_ids: set[int], item_ids: set[int],
                              ) -> list[tuple[QualifiedInstitution, str, int, str]]:
    """(qualification, scope name, the rule's valid days, institution name) of the institutions and items, in
    active scopes where the item has a rule, by scope."""
    return [(q, s, d, n) for q, s, d, n in db.execute(
        select(QualifiedInstitution, RecognitionScope.name, RecognitionRule.valid_days, Institution.name)
        .join(Institution, Institution.id == QualifiedInstitution.institution_id)
        .join(RecognitionScope, RecognitionScope.id == QualifiedInstitution.scope_id)
        .join(RecognitionRule, and_(RecognitionRule.scope_id == QualifiedInstitution.scope_id,
                                    RecognitionRule.item_id == QualifiedInstitution.item_id))
        .where(QualifiedInstitution.institution_id.in_(institution_ids), QualifiedInstitution.item_id.in_(item_ids),
               RecognitionScope.active.is_(True))
        .order_by(RecognitionScope.id))]


def rules_in_scopes(db: Session, item_id: int, scope_ids: Iterable[int]) -> list[RecognitionRule]:
    return list(db.scalars(select(RecognitionRule).where(RecognitionRule.item_id == item_id,
                                                         RecognitionRule.scope_id.in_(list(scope_ids) or [-1]))))


def resulted_orders(db: Session, patient_id: int, codes: Iterable[str], since: datetime,
                    limit: int = 200) -> list[DiagnosticOrder]:
    """The patient's resulted orders of these item codes reported since `since`, newest first."""
    return list(db.scalars(
        select(DiagnosticOrder).where(DiagnosticOrder.patient_id == patient_id, DiagnosticOrder.item_code.in_(codes),
                                      DiagnosticOrder.status.in_(RESULTED), DiagnosticOrder.reported_at.is_not(None),
                                      DiagnosticOrder.reported_at >= since)
        .order_by(DiagnosticOrder.reported_at.desc()).limit(limit)))


def observations_of_orders(db: Session, order_ids: Iterable[int]) -> list[LabObservation]:
    """The orders' lab observations in report order."""
    return list(db.scalars(select(LabObservation).where(LabObservation.order_id.in_(list(order_ids)))
                           .order_by(LabObservation.order_id, LabObservation.set_id, LabObservation.id)))


def lowest_price(db: Session, institution_id: int, codes: Iterable[str], loinc: str | None) -> int | None:
    """The member's lowest catalogue price (fen) of a diagnostics item with one of these codes or this LOINC."""
    codes = list(codes)
    conds: list[ColumnElement[bool]] = [DiagnosticItem.code.in_(codes), DiagnosticItem.local_code.in_(codes)]
    if loinc:
        conds.append(DiagnosticItem.loinc_code == loinc)
    price = db.scalar(select(func.min(ItemPrice.price_fen)).join(DiagnosticItem, DiagnosticItem.id == ItemPrice.item_id)
                      .where(ItemPrice.institution_id == institution_id, or_(*conds)))
    return None if price is None else int(price)


def decision_of_order(db: Session, order_id: int) -> int | None:
    """The id of the order's recognition decision, if it has one."""
    return db.scalar(select(RecognitionDecision.id).where(RecognitionDecision.order_id == order_id))


def department_of_practitioner(db: Session, practitioner_id: int) -> int | None:
    return db.scalar(select(Practitioner.department_id).where(Practitioner.id == practitioner_id))


def reuse_decisions_of_orders(db: Session, order_ids: list[int]) -> list[RecognitionDecision]:
    return list(db.scalars(select(RecognitionDecision).where(RecognitionDecision.order_id.in_(order_ids),
                                                             RecognitionDecision.decision == "reuse")))


def members_of_alliances(db: Session, alliance_ids: Iterable[int]) -> list[int]:
    """Institution ids of every membership (any period) of these alliances."""
    return list(db.scalars(select(Membership.institution_id).where(Membership.alliance_id.in_(list(alliance_ids)))))


def decisions_since(db: Session, start: datetime, institution_ids: Iterable[int] | None) -> list[RecognitionDecision]:
    """Decisions made since `start` (by these deciding institutions, or all when None), oldest first."""
    q = select(RecognitionDecision).where(RecognitionDecision.decided_at >= start)
    if institution_ids is not None:
        q = q.where(RecognitionDecision.institution_id.in_(list(institution_ids)))
    return list(db.scalars(q.order_by(RecognitionDecision.decided_at)))


def names_for_report(db: Session, institution_ids: set[int], department_ids: set[int],
                     user_ids: set[int]) -> tuple[dict[int, str], dict[int, str], dict[int, str]]:
    """Names of institutions, departments and users (display names), by id."""
    inst = {k: v for k, v in db.execute(select(Institution.id, Institution.name).where(
        Institution.id.in_(institution_ids or {-1})))}
    dept = {k: v for k, v in db.execute(select(Department.id, Department.name).where(
        Department.id.in_(department_ids or {-1})))}
    users = {k: v for k, v in db.execute(select(User.id, User.display_name).where(User.id.in_(user_ids or {-1})))}
    return inst, dept, users


def item_with_code(db: Session, code: str) -> RecognitionItem | None:
    """The item (active or not) whose own code this is."""
    return db.scalar(select(RecognitionItem).where(RecognitionItem.code == code))


def code_mapping(db: Session, code: str, system: str | None = None) -> RecognitionItemCode | None:
    """The mapping of this code (in this code system, or in any), whichever item holds it."""
    q = select(RecognitionItemCode).where(RecognitionItemCode.code == code)
    if system is not None:
        q = q.where(RecognitionItemCode.system == system)
    return db.scalar(q)


def code_mappings_of_item(db: Session, item_id: int) -> list[RecognitionItemCode]:
    return list(db.scalars(select(RecognitionItemCode).where(RecognitionItemCode.item_id == item_id)))


def qualification_on(db: Session, item_id: int, scope_id: int, institution_id: int,
                     qc_from: date) -> QualifiedInstitution | None:
    """The institution's qualification for the item in the scope starting on `qc_from`, if any."""
    return db.scalar(select(QualifiedInstitution).where(
        QualifiedInstitution.item_id == item_id, QualifiedInstitution.scope_id == scope_id,
        QualifiedInstitution.institution_id == institution_id, QualifiedInstitution.qc_from == qc_from))


def decisions_with_item_name(db: Session, patient_id: int, limit: int) -> list[tuple[RecognitionDecision, str]]:
    """The patient's decisions with their item's name, newest first."""
    return [(d, n) for d, n in db.execute(
        select(RecognitionDecision, RecognitionItem.name)
        .join(RecognitionItem, RecognitionItem.id == RecognitionDecision.item_id)
        .where(RecognitionDecision.patient_id == patient_id)
        .order_by(RecognitionDecision.decided_at.desc()).limit(limit))]
