"""Recognition pages: the order-time lookup with the decision form, a decision, the catalogue, the report.

Pages call the same services as the API. A referral or a platform order can open the lookup
with `/recognition?patient_id=…&item_code=…&referral_id=…` (or `order_id=`), so the decision is
linked to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from yilianti.alliance import repository as alliances
from yilianti.auth.deps import DB, Clinical, CurrentSubject
from yilianti.authz.subject import Subject
from yilianti.exceptions import AppError, InvalidInput
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.schemas import Id
from yilianti.models.alliance import Institution
from yilianti.models.patient import Patient
from yilianti.models.recognition import (
    QualifiedInstitution,
    RecognitionItem,
    RecognitionRule,
    RecognitionScope,
)
from yilianti.models.referral import Referral
from yilianti.patients import service as patients
from yilianti.recognition import admin, catalogue, repository, service
from yilianti.recognition.api import require_catalogue_admin
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t

router = APIRouter(include_in_schema=False)


def _items(db: Session) -> list[RecognitionItem]:
    return repository.active_items(db)


def _lookup_page(request: Request, db: Session, subject: Subject, values: dict[str, Any],
                 errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    found = None
    patient = None
    lookup_error = None
    pid, code = opt_int(values.get("patient_id")), (values.get("item_code") or "").strip()
    if pid is not None and code:
        try:
            found = service.lookup(db, subject, pid, code)
            patient = kit.get(db, Patient, pid)
        except AppError as exc:
            if exc.status == 404:
                raise
            lookup_error = errors_of(request, exc)
    departments = alliances.departments_of(db, subject.acting_institution_id, include_inactive=False) \
        if subject.acting_institution_id is not None else []
    return render_page(request, "recognition/lookup.html", {
        "items": _items(db), "picked": patients.picked(db, subject, pid), "values": values, "found": found,
        "patient": patient, "errors": errors or {}, "lookup_error": lookup_error or {},
        "reasons": service.RETEST_REASONS, "departments": departments,
    }, status_code=status_code)


@router.get("/recognition")
def lookup_page(request: Request, db: DB, subject: Clinical, patient_id: str = "", item_code: str = "",
                referral_id: str = "", order_id: str = "") -> Response:
    values = {"patient_id": patient_id, "item_code": item_code, "referral_id": referral_id, "order_id": order_id}
    ref_id = opt_int(referral_id)
    if ref_id is not None and not patient_id:
        # opened from a referral: its patient, when the referral involves the acting institution
        ref = kit.get(db, Referral, ref_id)
        if ref is not None and subject.acting_institution_id in (ref.from_institution_id, ref.to_institution_id):
            values["patient_id"] = str(ref.patient_id)
    return _lookup_page(request, db, subject, values)


@router.post("/recognition/decide")
async def decide_page(request: Request, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    values = {k: str(form.get(k) or "") for k in ("patient_id", "item_code", "decision", "reused_order_id",
                                                  "reason_code", "reason_text", "patient_informed", "referral_id",
                                                  "order_id", "department_id")}
    try:
        pid = opt_int(values["patient_id"])
        if pid is None:
            raise InvalidInput(fields={"patient_id": "请选择患者"})
        row = service.decide(db, subject, service.DecisionIn(
            patient_id=pid, item_code=values["item_code"], decision=values["decision"],
            reused_order_id=opt_int(values["reused_order_id"]), reason_code=values["reason_code"] or None,
            reason_text=values["reason_text"] or None, patient_informed=values["patient_informed"] == "1",
            order_id=opt_int(values["order_id"]), referral_id=opt_int(values["referral_id"]),
            department_id=opt_int(values["department_id"])))
    except AppError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return _lookup_page(request, db, subject, values, errors_of(request, exc), status_code=exc.status)
    return RedirectResponse(f"/recognition/decisions/{row.id}", status_code=303)


@router.get("/recognition/decisions/{decision_id}")
def decision_page(request: Request, db: DB, subject: Clinical, decision_id: Id) -> Response:
    row = service.get_decision(db, subject, decision_id)
    c = repository.decision_context(db, row)
    return render_page(request, "recognition/decision.html", {
        "d": row, "item": c.item, "patient": c.patient, "source": c.source, "scope": c.scope, "dept": c.department,
        "reasons": service.RETEST_REASONS})


@router.get("/recognition/catalogue")
def catalogue_page(request: Request, db: DB, subject: CurrentSubject, imported: str = "", saved: str = "") -> Response:
    return _catalogue(request, db, subject, {}, imported, saved=saved)


def _catalogue(request: Request, db: Session, subject: Subject, errors: dict[str, str], imported: str = "",
               status_code: int = 200, *, saved: str = "", qual_errors: dict[str, str] | None = None,
               qual_values: dict[str, str] | None = None, scope_errors: dict[str, str] | None = None,
               scope_values: dict[str, str] | None = None) -> Response:
    scopes = repository.all_scopes(db)
    areas = repository.scope_area_labels(db)
    rules: dict[int, list[tuple[str, int]]] = {}
    scope_names = {s.id: s.name for s in scopes}
    for r in repository.rules_of(db):
        rules.setdefault(r.item_id, []).append((scope_names.get(r.scope_id, ""), r.valid_days))
    items = repository.all_items(db)
    item_names = {i.id: i.name for i in items}
    quals = [(item_names.get(q.item_id, ""), scope_names.get(q.scope_id, ""), inst_name, q)
             for q, inst_name in repository.qualifications_with_institution(db)]
    return render_page(request, "recognition/catalogue.html", {
        "items": items,
        "scopes": scopes, "areas": areas, "rules": rules, "quals": quals,
        "errors": errors, "imported": imported, "can_import": subject.has("system_admin", "alliance_admin"),
        "kinds": service.SCOPE_KINDS, "item_kinds": service.ITEM_KINDS, "saved": saved,
        "qual_errors": qual_errors or {}, "qual_values": qual_values or {}, "scope_errors": scope_errors or {},
        "scope_values": scope_values or {}, "institutions": _institutions(db),
        "alliances": alliances.all_alliances(db)}, status_code=status_code)


@router.post("/recognition/catalogue")
async def catalogue_import_page(request: Request, db: DB, subject: CurrentSubject) -> Response:
    require_catalogue_admin(subject)
    form = await request.form()
    upload = form.get("file")
    try:
        content = await upload.read() if upload is not None and not isinstance(upload, str) else b""
        if not content:
            raise InvalidInput(fields={"file": "请选择要导入的文件"})
        filename = getattr(upload, "filename", "") or ""
        summary = catalogue.import_catalogue(db, subject, catalogue.read_rows(content, filename))
    except AppError as exc:
        db.rollback()
        return _catalogue(request, db, subject, errors_of(request, exc) | {"_form": t(request, exc.message, **exc.params)},
                          status_code=exc.status)
    return RedirectResponse(f"/recognition/catalogue?imported={summary.rows}", status_code=303)


@router.get("/recognition/report")
def report_page(request: Request, db: DB, subject: CurrentSubject, months: int = Query(6, ge=1, le=36),
                institution_id: str = "") -> Response:
    inst = opt_int(institution_id)
    data = service.monthly_report(db, subject, months=months, institution_id=inst)
    allowed = service.report_institutions(db, subject)
    chart = {"months": [m["month"] for m in data["months"]],
             "rate": [None if m["rate"] is None else round(m["rate"] * 100, 1) for m in data["months"]],
             "saved": [m["saved_yuan"] for m in data["months"]],
             "avoided": [m["tests_avoided"] for m in data["months"]]}
    return render_page(request, "recognition/report.html", {
        "data": data, "chart": chart, "months": months, "institution_id": inst,
        "institutions": alliances.institutions_among(db, allowed)})


# ------------------------------------------------------------------------------------ catalogue management
# For platform and alliance administrators (`require_catalogue_admin`): items, their scopes with the
# validity window, QC-qualified institutions with their periods, scopes. Every form re-renders with the
# field errors and status 422 when anything is wrong; nothing is written then (`recognition.admin`).

_ITEM_FIELDS = ("code", "name", "kind", "loinc", "codes", "price_yuan", "active")
_QUAL_FIELDS = ("item_code", "scope_code", "institution_id", "qc_from", "qc_to", "qc_body")


def _form_values(form: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {k: str(form.get(k) or "").strip() for k in names}


def _institutions(db: Session) -> list[Institution]:
    return alliances.institutions_by_place(db)


def _item_page(request: Request, db: Session, item: RecognitionItem | None, *, values: dict[str, str] | None = None,
               errors: dict[str, dict[str, str]] | None = None, status_code: int = 200, saved: str = "") -> Response:
    all_scopes = repository.active_scopes(db)
    scope_by_id = {s.id: s for s in all_scopes}
    rules: list[tuple[RecognitionRule, RecognitionScope | None]] = []
    quals: list[tuple[QualifiedInstitution, str, str]] = []
    codes: list[str] = []
    if item is not None:
        rules = [(r, scope_by_id.get(r.scope_id)) for r in repository.rules_of_item(db, item.id)]
        quals = [(q, inst_name, scope_by_id[q.scope_id].name if q.scope_id in scope_by_id else "")
                 for q, inst_name in repository.qualifications_of_item(db, item.id)]
        codes = repository.local_codes_of_item(db, item.id)
    base = {"code": item.code, "name": item.name, "kind": item.kind, "loinc": item.loinc or "",
            "codes": "; ".join(codes),
            "price_yuan": "" if item.price_fen is None else f"{item.price_fen / 100:.2f}",
            "active": "1" if item.active else ""} if item is not None else {"kind": "lab", "active": "1"}
    return render_page(request, "recognition/item.html", {
        "item": item, "values": base | (values or {}), "errors": errors or {}, "rules": rules, "quals": quals,
        "scopes": all_scopes, "institutions": _institutions(db), "item_kinds": service.ITEM_KINDS,
        "today": clock.today_local(), "saved": saved}, status_code=status_code)


def _failed(request: Request, db: Session, exc: AppError) -> dict[str, str]:
    db.rollback()
    return errors_of(request, exc) | {"_form": t(request, exc.message, **exc.params)}


@router.get("/recognition/catalogue/items/new")
def item_new_page(request: Request, db: DB, subject: CurrentSubject) -> Response:
    require_catalogue_admin(subject)
    return _item_page(request, db, None)


def _item_in(values: dict[str, str]) -> admin.ItemIn:
    return admin.ItemIn(code=values["code"], name=values["name"], kind=values["kind"], loinc=values["loinc"],
                        codes=admin.split_codes(values["codes"]), price_yuan=values["price_yuan"],
                        active=values["active"] == "1")


@router.post("/recognition/catalogue/items")
async def item_create_page(request: Request, db: DB, subject: CurrentSubject) -> Response:
    require_catalogue_admin(subject)
    values = _form_values(await request.form(), _ITEM_FIELDS)
    try:
        item = admin.save_item(db, subject, _item_in(values))
    except AppError as exc:
        if exc.status == 404:
            raise
        return _item_page(request, db, None, values=values, errors={"item": _failed(request, db, exc)},
                          status_code=exc.status)
    return RedirectResponse(f"/recognition/catalogue/items/{item.code}?saved=item", status_code=303)


@router.get("/recognition/catalogue/items/{code}")
def item_page(request: Request, db: DB, subject: CurrentSubject, code: str, saved: str = "") -> Response:
    require_catalogue_admin(subject)
    return _item_page(request, db, admin.item_by_code(db, code), saved=saved)


@router.post("/recognition/catalogue/items/{code}")
async def item_update_page(request: Request, db: DB, subject: CurrentSubject, code: str) -> Response:
    require_catalogue_admin(subject)
    item = admin.item_by_code(db, code)
    values = _form_values(await request.form(), _ITEM_FIELDS)
    try:
        admin.save_item(db, subject, _item_in(values), item_id=item.id)
    except AppError as exc:
        if exc.status == 404:
            raise
        errors = _failed(request, db, exc)
        return _item_page(request, db, kit.get(db, RecognitionItem, item.id), values=values, errors={"item": errors},
                          status_code=exc.status)
    return RedirectResponse(f"/recognition/catalogue/items/{values['code']}?saved=item", status_code=303)


@router.post("/recognition/catalogue/items/{code}/rules")
async def rule_page(request: Request, db: DB, subject: CurrentSubject, code: str) -> Response:
    require_catalogue_admin(subject)
    item = admin.item_by_code(db, code)
    form = await request.form()
    values = _form_values(form, ("scope_code", "valid_days"))
    try:
        admin.set_rule(db, subject, item_code=item.code, scope_code=values["scope_code"],
                       valid_days=values["valid_days"])
    except AppError as exc:
        if exc.status == 404:
            raise
        errors = _failed(request, db, exc)
        return _item_page(request, db, kit.get(db, RecognitionItem, item.id),
                          values={"rule_" + k: v for k, v in values.items()}, errors={"rule": errors},
                          status_code=exc.status)
    return RedirectResponse(f"/recognition/catalogue/items/{item.code}?saved=rule", status_code=303)


@router.post("/recognition/catalogue/rules/{rule_id}/delete")
def rule_delete_page(db: DB, subject: CurrentSubject, rule_id: Id) -> Response:
    require_catalogue_admin(subject)
    rule = kit.get(db, RecognitionRule, rule_id)
    item = kit.get(db, RecognitionItem, rule.item_id) if rule is not None else None
    admin.remove_rule(db, subject, rule_id)
    return RedirectResponse(f"/recognition/catalogue/items/{item.code if item else ''}?saved=rule", status_code=303)


def _qual_in(values: dict[str, str]) -> admin.QualificationIn:
    return admin.QualificationIn(item_code=values["item_code"], scope_code=values["scope_code"],
                                 institution_id=opt_int(values["institution_id"]), qc_from=values["qc_from"],
                                 qc_to=values["qc_to"], qc_body=values["qc_body"])


@router.post("/recognition/catalogue/qualifications")
async def qualification_create_page(request: Request, db: DB, subject: CurrentSubject) -> Response:
    """Add a QC qualification; from an item's page (`back=item`) or from the catalogue page."""
    require_catalogue_admin(subject)
    form = await request.form()
    values = _form_values(form, _QUAL_FIELDS)
    from_item = str(form.get("back") or "") == "item"
    try:
        admin.save_qualification(db, subject, _qual_in(values))
    except AppError as exc:
        if exc.status == 404:
            raise
        errors = _failed(request, db, exc)
        item = service.find_item(db, values["item_code"]) if from_item else None
        if item is not None:
            return _item_page(request, db, item, values={"q_" + k: v for k, v in values.items()},
                              errors={"qual": errors}, status_code=exc.status)
        return _catalogue(request, db, subject, {}, qual_errors=errors, qual_values=values, status_code=exc.status)
    item = service.find_item(db, values["item_code"])
    if from_item and item is not None:
        return RedirectResponse(f"/recognition/catalogue/items/{item.code}?saved=qual", status_code=303)
    return RedirectResponse("/recognition/catalogue?saved=qual#qualified", status_code=303)


@router.get("/recognition/catalogue/qualifications/{qual_id}")
def qualification_page(request: Request, db: DB, subject: CurrentSubject, qual_id: Id) -> Response:
    require_catalogue_admin(subject)
    q = kit.get_or_404(db, QualifiedInstitution, qual_id, "质控资格不存在")
    item, scope = kit.get(db, RecognitionItem, q.item_id), kit.get(db, RecognitionScope, q.scope_id)
    values = {"item_code": item.code if item else "", "scope_code": scope.code if scope else "",
              "institution_id": str(q.institution_id), "qc_from": q.qc_from.isoformat(),
              "qc_to": q.qc_to.isoformat(), "qc_body": q.qc_body or ""}
    return _qualification_page(request, db, q, values, {})


def _qualification_page(request: Request, db: Session, q: QualifiedInstitution, values: dict[str, str],
                        errors: dict[str, str], status_code: int = 200) -> Response:
    return render_page(request, "recognition/qualification.html", {
        "q": q, "values": values, "errors": errors, "items": _items(db), "institutions": _institutions(db),
        "scopes": repository.active_scopes(db)}, status_code=status_code)


@router.post("/recognition/catalogue/qualifications/{qual_id}")
async def qualification_update_page(request: Request, db: DB, subject: CurrentSubject, qual_id: Id) -> Response:
    require_catalogue_admin(subject)
    values = _form_values(await request.form(), _QUAL_FIELDS)
    try:
        q = admin.save_qualification(db, subject, _qual_in(values), qual_id=qual_id)
    except AppError as exc:
        if exc.status == 404:
            raise
        errors = _failed(request, db, exc)
        q0 = kit.get(db, QualifiedInstitution, qual_id)
        assert q0 is not None
        return _qualification_page(request, db, q0, values, errors, status_code=exc.status)
    item = kit.get(db, RecognitionItem, q.item_id)
    return RedirectResponse(f"/recognition/catalogue/items/{item.code if item else ''}?saved=qual", status_code=303)


@router.post("/recognition/catalogue/qualifications/{qual_id}/delete")
def qualification_delete_page(db: DB, subject: CurrentSubject, qual_id: Id) -> Response:
    require_catalogue_admin(subject)
    q = kit.get(db, QualifiedInstitution, qual_id)
    item = kit.get(db, RecognitionItem, q.item_id) if q is not None else None
    admin.remove_qualification(db, subject, qual_id)
    return RedirectResponse(f"/recognition/catalogue/items/{item.code if item else ''}?saved=qual", status_code=303)


@router.post("/recognition/catalogue/scopes")
async def scope_create_page(request: Request, db: DB, subject: CurrentSubject) -> Response:
    """A new scope: an alliance, or areas written as 北京; 天津; 河北·廊坊 (province, or province·city)."""
    require_catalogue_admin(subject)
    values = _form_values(await request.form(), ("code", "name", "kind", "alliance_id", "areas"))
    areas: list[tuple[str, str | None]] = []
    for part in admin.split_codes(values["areas"]):
        prov, _, city = part.replace("/", "·").replace(" ", "·").partition("·")
        areas.append((prov, city or None))
    try:
        service.create_scope(db, subject, code=values["code"], name=values["name"], kind=values["kind"],
                             alliance_id=opt_int(values["alliance_id"]), areas=areas)
    except AppError as exc:
        if exc.status == 404:
            raise
        errors = _failed(request, db, exc)
        return _catalogue(request, db, subject, {}, scope_errors=errors, scope_values=values, status_code=exc.status)
    return RedirectResponse("/recognition/catalogue?saved=scope#scopes", status_code=303)
