"""Recognition JSON API — what member HIS/LIS systems call with an API token (and the pages' JSON).

- `GET  /api/v1/recognition/lookup?patient_id=&item_code=` the patient's valid recognised
  results for the item, newest first (source, date, days left, HR scopes, values); other
  members' results only with the patient's sharing consent in force — otherwise
  `consent_missing: true` and a message saying so. Every call is audited.
- `POST /api/v1/recognition/decisions` reuse (`reused_order_id`) or re-test (`reason_code`,
  `reason_text` for "other", `patient_informed: true`).
- `POST /api/v1/recognition/results` a member's own LIS/HIS result (numeric values need units).
- `GET  /api/v1/recognition/report?months=6[&institution_id=]` the monthly figures.
- `GET  /api/v1/recognition/items`, `PUT /api/v1/recognition/rules` (valid_days > 0),
  `POST /api/v1/recognition/catalogue` (CSV/XLSX upload, all rows or none),
  `GET  /api/v1/recognition/marks?order_id=…` HR marks of results.
- Maintenance (administrators): `POST /items`, `PUT /items/{code}`, `DELETE /rules?item_code=&scope_code=`,
  `GET|POST /qualifications`, `PUT|DELETE /qualifications/{id}` (QC period from/to) — 422 per field.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, UploadFile

from yilianti.auth.deps import DB, Clinical, CurrentSubject
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.diagnostics import repository as diagnostics
from yilianti.exceptions import Forbidden, InvalidInput, NotFound
from yilianti.kit import repository as kit
from yilianti.kit.i18n import translate
from yilianti.kit.schemas import Id
from yilianti.models.recognition import (
    QualifiedInstitution,
    RecognitionItem,
    RecognitionScope,
)
from yilianti.recognition import admin, catalogue, repository, service
from yilianti.recognition.results import ExternalResultIn, import_external_result
from yilianti.recognition.schemas import (
    DecisionBody,
    DecisionOut,
    ImportedOut,
    ItemBody,
    ItemOut,
    LookupOut,
    MarkOut,
    ObservationOut,
    QualificationBody,
    QualificationOut,
    ResultOut,
    RuleIn,
)

router = APIRouter(prefix="/api/v1/recognition", tags=["recognition"])


def lookup_out(found: service.Lookup, locale: str) -> LookupOut:
    return LookupOut(
        patient_id=found.patient_id, item_code=found.item.code, item_name=found.item.name, kind=found.item.kind,
        in_scope=found.in_scope, scopes=found.scope_names, consent_missing=found.consent_missing,
        message=translate(found.message, locale) if found.message else "",
        results=[ResultOut(order_id=r.order_id, accession_number=r.accession_number, item_code=r.item_code,
                           item_name=r.item_name, source_institution_id=r.institution_id,
                           source_institution=r.institution_name, result_date=r.result_date,
                           valid_until=r.valid_until, days_left=r.days_left, hr_mark="HR " + "、".join(r.scopes),
                           scopes=r.scopes, own_institution=r.own, imported_from_member_system=r.imported,
                           observations=[ObservationOut(**o) for o in r.observations]) for r in found.results],
        retest_reasons={k: translate(v, locale) for k, v in service.RETEST_REASONS.items()},
    )


def _locale(request: Request) -> str:
    from yilianti.exceptions import request_locale

    return request_locale(request)


@router.get("/lookup", response_model=LookupOut)
def lookup(request: Request, db: DB, subject: Clinical, patient_id: Id,
           item_code: str = Query(..., min_length=1, max_length=64)) -> LookupOut:
    return lookup_out(service.lookup(db, subject, patient_id, item_code), _locale(request))


def decision_out(db: DB, row: Any, locale: str) -> DecisionOut:
    item = kit.get(db, RecognitionItem, row.item_id)
    return DecisionOut(
        id=row.id, patient_id=row.patient_id, item_code=item.code if item else row.requested_code,
        decision=row.decision, satisfied_by_recognition=row.decision == "reuse",
        reused_order_id=row.reused_order_id, reused_institution_id=row.reused_institution_id,
        reused_result_date=row.reused_result_date, reason_code=row.reason_code,
        reason=translate(service.RETEST_REASONS[row.reason_code], locale) if row.reason_code else None,
        reason_text=row.reason_text, patient_informed=row.patient_informed, order_id=row.order_id,
        referral_id=row.referral_id, institution_id=row.institution_id, department_id=row.department_id,
        user_id=row.user_id, decided_at=row.decided_at, price_saved_fen=row.price_saved_fen)


@router.post("/decisions", response_model=DecisionOut, status_code=201)
def decide(request: Request, db: DB, subject: Clinical, body: DecisionBody) -> DecisionOut:
    row = service.decide(db, subject, service.DecisionIn(**body.model_dump()))
    return decision_out(db, row, _locale(request))


@router.get("/decisions/{decision_id}", response_model=DecisionOut)
def get_decision(request: Request, db: DB, subject: Clinical, decision_id: Id) -> DecisionOut:
    return decision_out(db, service.get_decision(db, subject, decision_id), _locale(request))


@router.post("/results", response_model=ImportedOut, status_code=201)
def import_result(db: DB, subject: CurrentSubject, body: ExternalResultIn) -> ImportedOut:
    order = import_external_result(db, subject, body)
    return ImportedOut(order_id=order.id, accession_number=order.accession_number, item_code=order.item_code,
                       hr_mark=service.hr_mark(db, order).label)


@router.get("/marks", response_model=list[MarkOut])
def marks(db: DB, subject: Clinical, order_id: list[Id] = Query(..., max_length=500)) -> list[MarkOut]:
    orders = diagnostics.orders_with_ids(db, order_id[:200])
    visible = []
    for o in orders:
        if policy.decide(db, subject, o.patient_id) is None:
            continue
        visible.append(o)
    found = service.hr_marks(db, visible)
    return [MarkOut(order_id=o.id, marked=found[o.id].marked, hr_mark=found[o.id].label, scopes=found[o.id].scopes)
            for o in visible]


@router.get("/report")
def report(db: DB, subject: CurrentSubject, months: int = Query(6, ge=1, le=36),
           institution_id: Id | None = None) -> dict[str, Any]:
    return service.monthly_report(db, subject, months=months, institution_id=institution_id)


@router.get("/items", response_model=list[ItemOut])
def items(db: DB, subject: CurrentSubject) -> list[ItemOut]:
    scope_codes = repository.scope_codes(db)
    rules: dict[int, dict[str, int]] = {}
    for r in repository.rules_of(db):
        rules.setdefault(r.item_id, {})[scope_codes.get(r.scope_id, "")] = r.valid_days
    return [ItemOut(code=i.code, name=i.name, kind=i.kind, loinc=i.loinc, price_fen=i.price_fen,
                    rules=rules.get(i.id, {}))
            for i in repository.active_items(db)]


def require_catalogue_admin(subject: Subject) -> None:
    if not subject.has("system_admin", "alliance_admin"):
        raise Forbidden("只有平台或医联体管理员可以维护互认目录")


@router.put("/rules")
def set_rule(db: DB, subject: CurrentSubject, body: RuleIn) -> dict[str, Any]:
    require_catalogue_admin(subject)
    rule = service.set_rule(db, subject, item_code=body.item_code, scope_code=body.scope_code,
                            valid_days=body.valid_days)
    return {"item_code": body.item_code, "scope_code": body.scope_code, "valid_days": rule.valid_days}


@router.post("/catalogue")
def import_catalogue(db: DB, subject: CurrentSubject, file: UploadFile) -> dict[str, Any]:
    require_catalogue_admin(subject)
    content = file.file.read(20 * 1024 * 1024)
    if not content:
        raise InvalidInput(fields={"file": "文件是空的"})
    summary = catalogue.import_catalogue(db, subject, catalogue.read_rows(content, file.filename or ""))
    return summary.__dict__


# ------------------------------------------------------------------------------------ catalogue maintenance
# Administrators (platform / alliance): the same checks as the pages (`recognition.admin`); any wrong field →
# 422 with one message per field and nothing written; every change audited.

def _item_in(body: ItemBody) -> admin.ItemIn:
    return admin.ItemIn(code=body.code, name=body.name, kind=body.kind, loinc=body.loinc, codes=body.codes,
                        price_yuan=body.price_yuan, active=body.active)


def _item_out(db: DB, item: RecognitionItem) -> ItemOut:
    scope_codes = repository.scope_codes(db)
    rules = {scope_codes.get(r.scope_id, ""): r.valid_days for r in repository.rules_of(db, item.id)}
    return ItemOut(code=item.code, name=item.name, kind=item.kind, loinc=item.loinc, price_fen=item.price_fen,
                   rules=rules)


@router.post("/items", response_model=ItemOut, status_code=201)
def create_item(db: DB, subject: CurrentSubject, body: ItemBody) -> ItemOut:
    require_catalogue_admin(subject)
    return _item_out(db, admin.save_item(db, subject, _item_in(body)))


@router.put("/items/{code}", response_model=ItemOut)
def update_item(db: DB, subject: CurrentSubject, code: str, body: ItemBody) -> ItemOut:
    require_catalogue_admin(subject)
    item = admin.item_by_code(db, code)
    return _item_out(db, admin.save_item(db, subject, _item_in(body), item_id=item.id))


@router.delete("/rules", status_code=204)
def delete_rule(db: DB, subject: CurrentSubject, item_code: str = Query(...), scope_code: str = Query(...)) -> None:
    require_catalogue_admin(subject)
    item = service.require_item(db, item_code)
    rule = repository.rule_of(db, item.id, scope_code)
    if rule is None:
        raise NotFound("互认范围设置不存在")
    admin.remove_rule(db, subject, rule.id)


def _qual_out(db: DB, q: QualifiedInstitution) -> QualificationOut:
    item, scope = kit.get(db, RecognitionItem, q.item_id), kit.get(db, RecognitionScope, q.scope_id)
    return QualificationOut(id=q.id, item_code=item.code if item else "", scope_code=scope.code if scope else "",
                            institution_id=q.institution_id, qc_from=q.qc_from, qc_to=q.qc_to, qc_body=q.qc_body)


@router.get("/qualifications", response_model=list[QualificationOut])
def list_qualifications(db: DB, subject: CurrentSubject, item_code: str | None = None) -> list[QualificationOut]:
    item_id = service.require_item(db, item_code).id if item_code else None
    return [_qual_out(db, row) for row in repository.qualifications(db, item_id)]


def _qual_in(body: QualificationBody) -> admin.QualificationIn:
    return admin.QualificationIn(item_code=body.item_code, scope_code=body.scope_code,
                                 institution_id=body.institution_id, qc_from=body.qc_from, qc_to=body.qc_to,
                                 qc_body=body.qc_body)


@router.post("/qualifications", response_model=QualificationOut, status_code=201)
def create_qualification(db: DB, subject: CurrentSubject, body: QualificationBody) -> QualificationOut:
    require_catalogue_admin(subject)
    return _qual_out(db, admin.save_qualification(db, subject, _qual_in(body)))


@router.put("/qualifications/{qual_id}", response_model=QualificationOut)
def update_qualification(db: DB, subject: CurrentSubject, qual_id: Id, body: QualificationBody) -> QualificationOut:
    require_catalogue_admin(subject)
    return _qual_out(db, admin.save_qualification(db, subject, _qual_in(body), qual_id=qual_id))


@router.delete("/qualifications/{qual_id}", status_code=204)
def delete_qualification(db: DB, subject: CurrentSubject, qual_id: Id) -> None:
    require_catalogue_admin(subject)
    admin.remove_qualification(db, subject, qual_id)
