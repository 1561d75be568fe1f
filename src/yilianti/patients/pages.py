"""Patient pages: search, register at the acting institution, view, consent, break-glass."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.alliance import repository as alliances
from yilianti.auth.deps import DB, Clinical, ReadDB
from yilianti.authz import policy
from yilianti.exceptions import AppError, InvalidInput, request_locale
from yilianti.kit.i18n import translate
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id
from yilianti.models.patient import Authority
from yilianti.patients import repository, service
from yilianti.patients.schemas import ConsentIn
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import age_parts, mask_id, mask_phone, render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)

FORM_FIELDS = ("name", "sex", "birth_date", "resident_id", "phone", "address", "mrn", "insurance_no",
               "health_card_no", "guardian_name", "guardian_relation", "guardian_phone", "consent_scope",
               "consent_alliance_id")


def _my_alliances(db: DB, institution_id: Id | None) -> list[tuple[int, str]]:
    return alliances.alliance_choices_of(db, institution_id)


@router.get("/patients")
def patient_list(request: Request, db: DB, reads: ReadDB, subject: Clinical) -> Response:
    """The patients the acting institution may see, on the list kit: search (name, 拼音首字母, the last four of
    the phone or resident ID, a whole identifier), registration days, registered here or elsewhere, paging with
    the total and an xlsx export of exactly those rows (phones and IDs masked)."""
    lp = ListParams.of(request.query_params).only(repository.REGISTERED)
    pg = service.patients_page(db, subject, lp, reads=reads)
    rids = repository.resident_ids(reads, [p.id for p in pg.items])
    names = alliances.institution_names(db, {p.registered_by_institution_id for p in pg.items})
    if lp.export:  # thousands of rows: the locale looked up once, not per cell
        locale = request_locale(request)
        head = ("姓名", "性别", "年龄", "出生日期", "身份证号", "手机号", "住址", "登记机构", "登记时间")
        body = [(p.name, translate(p.sex, locale) if p.sex else "", _age(locale, p.birth_date), p.birth_date,
                 mask_id(rids.get(p.id)), mask_phone(p.phone), p.address or "",
                 names.get(p.registered_by_institution_id, ""), p.created_at)
                for p in pg.items]
        return xlsx_response(t(request, "患者"), [t(request, h) for h in head], body, "patients")
    return render_page(request, "patients/list.html", {
        "patients": pg.items, "pg": pg, "lp": lp, "rids": rids, "names": names,
        "statuses": [("here", "本机构登记"), ("elsewhere", "其他机构登记")],
        "replica_max_lag": reads.info.get("replica_max_lag")})


def _age(locale: str, birth: date | None) -> str:
    parts = age_parts(birth)
    return translate(parts[1], locale, n=parts[0]) if parts else ""


PICK_LIMIT = 8
_FIELD = re.compile(r"[a-z_]{1,40}")


def _field(value: str) -> str:
    return value if _FIELD.fullmatch(value) else "patient_id"


@router.get("/patients/pick")
def patient_pick(request: Request, db: DB, subject: Clinical, pick_q: str = "", field: str = "patient_id") -> Response:
    """The picker's matches as a fragment (the same search, access rule and audit as the patient list)."""
    q = pick_q.strip()[:64]
    rows = service.search(db, subject, q, limit=PICK_LIMIT + 1) if q else []
    return render_page(request, "patients/_pick_results.html", {
        "patients": rows[:PICK_LIMIT], "more": len(rows) > PICK_LIMIT, "q": q, "field": _field(field),
        "rids": repository.resident_ids(db, [p.id for p in rows])})


@router.get("/patients/pick/chosen")
def patient_pick_chosen(request: Request, db: DB, subject: Clinical, id: str = "",
                        field: str = "patient_id") -> Response:
    """The picker with one patient chosen; other parts of the form listen for `patient-chosen`."""
    patient = service.picked(db, subject, opt_int(id))
    response = render_page(request, "patients/_picker_fragment.html", {"patient": patient, "field": _field(field)})
    response.headers["HX-Trigger-After-Settle"] = json.dumps({"patient-chosen": {"field": _field(field),
                                                                    "id": patient.id if patient else None}})
    return response


@router.get("/patients/pick/clear")
def patient_pick_clear(request: Request, subject: Clinical, field: str = "patient_id") -> Response:
    response = render_page(request, "patients/_picker_fragment.html", {"patient": None, "field": _field(field)})
    response.headers["HX-Trigger-After-Settle"] = json.dumps({"patient-chosen": {"field": _field(field), "id": None}})
    return response


@router.get("/patients/new")
def patient_new(request: Request, db: DB, subject: Clinical) -> Response:
    return render_page(request, "patients/form.html", {
        "values": {"consent_scope": "alliance"}, "errors": {},
        "alliances": _my_alliances(db, subject.acting_institution_id)})


@router.post("/patients/new")
async def patient_create(request: Request, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "") or "") for k in FORM_FIELDS}
    data: dict[str, object] = {k: v for k, v in values.items() if v != ""}
    try:
        parsed = service.parse_registration(data)
        result = service.register(db, subject, parsed)
    except AppError as exc:
        return render_page(request, "patients/form.html", {
            "values": values, "errors": errors_of(request, exc),
            "alliances": _my_alliances(db, subject.acting_institution_id)}, 422)
    flag = {"resident_id": "existing", "score": "linked"}.get(result.link, "created")
    review = f"&review={result.review_candidates}" if result.review_candidates else ""
    return RedirectResponse(f"/patients/{result.patient.id}?{flag}=1{review}", status_code=303)


@router.get("/patients/{patient_id}")
def patient_view(request: Request, patient_id: Id, db: DB, subject: Clinical) -> Response:
    survivor = service.merged_into(db, subject, patient_id)
    if survivor is not None:  # a merged person's old link leads to the surviving person
        return RedirectResponse(f"/patients/{survivor}", status_code=302)
    patient, access = service.get_patient(db, subject, patient_id)
    flash = None
    if request.query_params.get("created"):
        flash = t(request, "患者已登记")
    elif request.query_params.get("existing"):
        flash = t(request, "该身份证号已在平台登记：已关联到同一患者，并为本机构建立诊疗关系")
    elif request.query_params.get("linked"):
        flash = t(request, "姓名、出生日期等信息与平台已有患者高度一致：已关联到同一患者，并为本机构建立诊疗关系")
    if request.query_params.get("review"):
        flash = (flash or "") + " " + t(request, "另有疑似同一人的记录，已提交患者身份核对")
    return render_page(request, "patients/view.html", {
        "patient": patient, "access": access, "consents": repository.consents_of(db, patient_id),
        "care": repository.care_of(db, patient_id), "alliances": _my_alliances(db, subject.acting_institution_id),
        "flash": flash, "Authority": Authority})


@router.post("/patients/{patient_id}/consents")
def consent_grant(request: Request, patient_id: Id, db: DB, subject: Clinical,
                  scope: Annotated[str, Form()] = "", alliance_id: Annotated[str, Form()] = "") -> Response:
    try:
        if scope not in ("all", "alliance"):
            raise InvalidInput(fields={"scope": "请选择授权范围"})
        service.grant_consent(db, subject, patient_id,
                              ConsentIn.model_validate({"scope": scope, "alliance_id": opt_int(alliance_id)}))
    except InvalidInput as exc:
        patient, access = service.get_patient(db, subject, patient_id)
        return render_page(request, "patients/view.html", {
            "patient": patient, "access": access, "consents": repository.consents_of(db, patient_id),
            "care": repository.care_of(db, patient_id), "alliances": _my_alliances(db, subject.acting_institution_id),
            "consent_errors": errors_of(request, exc), "Authority": Authority}, 422)
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)


@router.post("/patients/{patient_id}/consents/{consent_id}/withdraw")
def consent_withdraw(patient_id: Id, consent_id: Id, db: DB, subject: Clinical) -> Response:
    service.withdraw_consent(db, subject, patient_id, consent_id)
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)


@router.get("/break-glass")
def break_glass_form(request: Request, subject: Clinical) -> Response:
    return render_page(request, "patients/break_glass.html", {"errors": {}, "values": {}})


@router.post("/break-glass")
def break_glass(request: Request, db: DB, subject: Clinical, value: Annotated[str, Form()] = "",
                reason: Annotated[str, Form()] = "") -> Response:
    try:
        grant = policy.break_glass(db, subject, Authority.resident_id, value, reason)
    except AppError as exc:
        errors = errors_of(request, exc)
        if exc.status == 404:
            errors = {"value": t(request, exc.message)}
        return render_page(request, "patients/break_glass.html",
                           {"errors": errors, "values": {"value": value, "reason": reason}}, exc.status)
    return RedirectResponse(f"/patients/{grant.patient_id}", status_code=303)
