"""Recognition pages: the order-time lookup with the decision form, a decision, the catalogue, the report.

Pages call the same services as the API. A referral or a platform order can open the lookup
with `/recognition?patient_id=…&item_code=…&referral_id=…` (or `order_id=`), so the decision is
linked to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical, CurrentSubject
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.exceptions import AppError, InvalidInput
from yilianti.models.alliance import Department, Institution
from yilianti.models.patient import Patient
from yilianti.models.recognition import (
    QualifiedInstitution,
    RecognitionItem,
    RecognitionRule,
    RecognitionScope,
    RecognitionScopeArea,
)
from yilianti.models.referral import Referral
from yilianti.recognition import catalogue, service
from yilianti.recognition.api import require_catalogue_admin
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t

router = APIRouter(include_in_schema=False)


def _items(db: Session) -> list[RecognitionItem]:
    return list(db.scalars(select(RecognitionItem).where(RecognitionItem.active.is_(True))
                           .order_by(RecognitionItem.kind, RecognitionItem.code)))


def _patients(db: Session, subject: Subject) -> list[Patient]:
    return list(db.scalars(select(Patient).where(policy.readable(subject)).order_by(Patient.id.desc()).limit(200)))


def _lookup_page(request: Request, db: Session, subject: Subject, values: dict[str, Any],
                 errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    found = None
    patient = None
    lookup_error = None
    pid, code = opt_int(values.get("patient_id")), (values.get("item_code") or "").strip()
    if pid is not None and code:
        try:
            found = service.lookup(db, subject, pid, code)
            patient = db.get(Patient, pid)
        except AppError as exc:
            if exc.status == 404:
                raise
            lookup_error = errors_of(request, exc)
    departments = list(db.scalars(select(Department).where(Department.institution_id == subject.acting_institution_id,
                                                           Department.active.is_(True)).order_by(Department.name)))
    return render_page(request, "recognition/lookup.html", {
        "items": _items(db), "patients": _patients(db, subject), "values": values, "found": found,
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
        ref = db.get(Referral, ref_id)
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
def decision_page(request: Request, db: DB, subject: Clinical, decision_id: int) -> Response:
    row = service.get_decision(db, subject, decision_id)
    item = db.get(RecognitionItem, row.item_id)
    patient = db.get(Patient, row.patient_id)
    source = db.get(Institution, row.reused_institution_id) if row.reused_institution_id else None
    scope = db.get(RecognitionScope, row.scope_id) if row.scope_id else None
    dept = db.get(Department, row.department_id) if row.department_id else None
    return render_page(request, "recognition/decision.html", {
        "d": row, "item": item, "patient": patient, "source": source, "scope": scope, "dept": dept,
        "reasons": service.RETEST_REASONS})


@router.get("/recognition/catalogue")
def catalogue_page(request: Request, db: DB, subject: CurrentSubject, imported: str = "") -> Response:
    return _catalogue(request, db, subject, {}, imported)


def _catalogue(request: Request, db: Session, subject: Subject, errors: dict[str, str], imported: str = "",
               status_code: int = 200) -> Response:
    scopes = list(db.scalars(select(RecognitionScope).order_by(RecognitionScope.id)))
    areas: dict[int, list[str]] = {}
    for a in db.scalars(select(RecognitionScopeArea)):
        areas.setdefault(a.scope_id, []).append(a.province + (f"·{a.city}" if a.city else ""))
    rules: dict[int, list[tuple[str, int]]] = {}
    scope_names = {s.id: s.name for s in scopes}
    for r in db.scalars(select(RecognitionRule)):
        rules.setdefault(r.item_id, []).append((scope_names.get(r.scope_id, ""), r.valid_days))
    inst_names = {i.id: i.name for i in db.scalars(select(Institution))}
    item_names = {i.id: i.name for i in db.scalars(select(RecognitionItem))}
    quals = [(item_names.get(q.item_id, ""), scope_names.get(q.scope_id, ""), inst_names.get(q.institution_id, ""), q)
             for q in db.scalars(select(QualifiedInstitution).order_by(QualifiedInstitution.institution_id,
                                                                       QualifiedInstitution.item_id))]
    return render_page(request, "recognition/catalogue.html", {
        "items": _items(db), "scopes": scopes, "areas": areas, "rules": rules, "quals": quals,
        "errors": errors, "imported": imported, "can_import": subject.has("system_admin", "alliance_admin"),
        "kinds": service.SCOPE_KINDS, "item_kinds": service.ITEM_KINDS}, status_code=status_code)


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
def report_page(request: Request, db: DB, subject: CurrentSubject, months: int = 6,
                institution_id: str = "") -> Response:
    inst = opt_int(institution_id)
    data = service.monthly_report(db, subject, months=months, institution_id=inst)
    allowed = service.report_institutions(db, subject)
    q = select(Institution).order_by(Institution.name)
    if allowed is not None:
        q = q.where(Institution.id.in_(allowed))
    chart = {"months": [m["month"] for m in data["months"]],
             "rate": [None if m["rate"] is None else round(m["rate"] * 100, 1) for m in data["months"]],
             "saved": [m["saved_yuan"] for m in data["months"]],
             "avoided": [m["tests_avoided"] for m in data["months"]]}
    return render_page(request, "recognition/report.html", {
        "data": data, "chart": chart, "months": months, "institution_id": inst,
        "institutions": list(db.scalars(q.limit(300)))})
