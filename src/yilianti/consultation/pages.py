"""Teleconsultation pages: worklists, request form, case page (messages, opinion, convert, close-out), report.

Every action form carries `expected_status` where the move depends on the status, so a
stale page answers 409 with the message on the case page and nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from yilianti.alliance import repository as alliances
from yilianti.attachments import repository as attachments_repo
from yilianti.auth import repository as accounts
from yilianti.auth.deps import DB, Clinical, CurrentSubject
from yilianti.authz.subject import Subject
from yilianti.consultation import flows, repository, service, states
from yilianti.consultation.reports import report_period as _period
from yilianti.consultation.reports import report_scope, require_report_viewer
from yilianti.consultation.schemas import (
    AssignIn,
    CloseOutIn,
    ConsultationIn,
    ConvertIn,
    MessageIn,
    OpinionIn,
)
from yilianti.consultation.states import (
    FINAL,
    KIND_LABELS,
    OUTCOME_LABELS,
    STATUS_LABELS,
    URGENCY_LABELS,
    Side,
    Status,
)
from yilianti.diagnostics import repository as diagnostics_repo
from yilianti.exceptions import AppError, InvalidInput, parse_input
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id
from yilianti.models.alliance import Department
from yilianti.models.patient import Patient
from yilianti.patients import service as patients
from yilianti.patients.repository import patients_by_id as patient_rows_by_id
from yilianti.scheduling import repository as sched_repo
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response
from yilianti.workforce import repository as workforce

router = APIRouter(include_in_schema=False)

BUCKET_LABELS = {"open": "进行中", "to_assign": "待分派", "mine": "分派给我", "overdue": "已超时", "to_close": "待结案",
                 "done": "已结束", "all": "全部"}
FORM_FIELDS = ("patient_id", "consulted_institution_id", "kind", "department_id", "specialty", "question",
               "clinical_summary", "urgency", "consent_confirmed", "consent_note", "scheduled_at", "video_url")
LABELS = {"status": STATUS_LABELS, "outcome": OUTCOME_LABELS, "kind": KIND_LABELS, "urgency": URGENCY_LABELS}


def _names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    return alliances.institution_names(db, ids)


def _patients(db: Session, ids: set[int]) -> dict[int, Patient]:
    return patient_rows_by_id(db, ids)


# ------------------------------------------------------------------------------------- worklist


@router.get("/consultations")
def consultation_list(request: Request, db: DB, subject: Clinical, side: str = "", bucket: str = "open") -> Response:
    if side not in ("requester", "consultant"):
        side = "consultant" if subject.has("coordinator") and not subject.has("doctor") else "requester"
    side_ = Side(side)
    if bucket not in service.BUCKETS:
        bucket = "open"
    lp = replace(ListParams.of(request.query_params), extra=(("side", side), ("bucket", bucket)))
    pg = service.worklist_page(db, subject, service.WorklistFilter(side_, bucket), lp)
    rows = pg.items
    names = _names(db, [i for r in rows for i in (r.requesting_institution_id, r.consulted_institution_id)])
    people = _patients(db, {r.patient_id for r in rows})
    if lp.export:
        head = ("会诊编号", "类型", "患者", "申请机构", "会诊机构", "紧急程度", "状态", "申请时间", "当前步骤截止")
        body = [(r.case_no, t(request, KIND_LABELS.get(r.kind, r.kind)),
                 people[r.patient_id].name if r.patient_id in people else "", names.get(r.requesting_institution_id, ""),
                 names.get(r.consulted_institution_id, ""), t(request, URGENCY_LABELS.get(r.urgency, r.urgency)),
                 t(request, STATUS_LABELS.get(Status(r.status), r.status)), r.created_at, r.due_at) for r in rows]
        return xlsx_response(t(request, "远程会诊"), [t(request, h) for h in head], body, "consultations")
    return render_page(request, "consultation/list.html", {
        "rows": rows, "pg": pg, "lp": lp, "side": side, "bucket": bucket, "buckets": BUCKET_LABELS,
        "counts": service.worklist_counts(db, subject, side_), "now": clock.now(), "FINAL": FINAL,
        "names": names, "patients": people, "labels": LABELS, "statuses": list(STATUS_LABELS.items())})


# ------------------------------------------------------------------------------------- new


def _target_context(db: Session, subject: Subject, values: dict[str, Any]) -> dict[str, Any]:
    """Consulted institution → its departments → its qualified experts (of the department when one is chosen)."""
    own = subject.acting_institution_id
    targets = [i for i in sched_repo.partner_institutions(db, own) if i.id != own]
    target = opt_int(str(values.get("consulted_institution_id") or ""))
    if target is not None and all(i.id != target for i in targets):
        target, values["consulted_institution_id"] = None, ""
    departments = alliances.departments_of(db, target, include_inactive=False) if target else []
    dept = opt_int(str(values.get("department_id") or ""))
    if dept is not None and all(d.id != dept for d in departments):
        dept, values["department_id"] = None, ""
    experts = (service.qualified_experts(db, target, dept) or service.qualified_experts(db, target)) if target else []
    return {"values": values, "targets": targets, "departments": departments, "experts": experts}


def _orders_context(db: Session, subject: Subject, values: dict[str, Any]) -> dict[str, Any]:
    patient = patients.picked(db, subject, opt_int(str(values.get("patient_id") or "")))
    orders = repository.patient_orders(db, patient.id) if patient is not None else []
    return {"values": values, "orders": orders, "patient": patient}


def _new_context(db: Session, subject: Subject, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    ctx: dict[str, Any] = {"errors": errors, "labels": LABELS}
    ctx.update(_target_context(db, subject, values))
    ctx.update(_orders_context(db, subject, values))
    return ctx


def _fragment_values(request: Request) -> dict[str, Any]:
    params = request.query_params
    values: dict[str, Any] = {k: str(params.get(k, "") or "") for k in FORM_FIELDS}
    values["expert_ids"] = [str(v) for v in params.getlist("expert_ids")]
    values["order_ids"] = [str(v) for v in params.getlist("order_ids")]
    return values


@router.get("/consultations/new")
def consultation_new(request: Request, db: DB, subject: Clinical, patient_id: str = "",
                     consulted_institution_id: str = "", kind: str = "econsult") -> Response:
    values: dict[str, Any] = {"patient_id": patient_id, "consulted_institution_id": consulted_institution_id,
                              "kind": kind if kind in KIND_LABELS else "econsult", "urgency": "routine",
                              "expert_ids": [], "order_ids": []}
    return render_page(request, "consultation/new.html", _new_context(db, subject, values, {}))


@router.get("/consultations/new/target")
def consultation_new_target(request: Request, db: DB, subject: Clinical) -> Response:
    """Fragment: the consulted institution's departments and experts, filled in place."""
    ctx = _target_context(db, subject, _fragment_values(request))
    return render_page(request, "consultation/_target.html", {**ctx, "errors": {}})


@router.get("/consultations/new/orders")
def consultation_new_orders(request: Request, db: DB, subject: Clinical) -> Response:
    """Fragment: the chosen patient's results that can go with the request."""
    ctx = _orders_context(db, subject, _fragment_values(request))
    return render_page(request, "consultation/_orders.html", {**ctx, "errors": {}})


def parse_form(values: dict[str, Any]) -> ConsultationIn:
    data: dict[str, Any] = {k: (values.get(k) or None) for k in FORM_FIELDS}
    data["question"] = values.get("question") or ""
    data["consent_confirmed"] = values.get("consent_confirmed") == "1"
    data["kind"] = values.get("kind") or "econsult"
    data["urgency"] = values.get("urgency") or "routine"
    data["expert_practitioner_ids"] = [int(x) for x in values.get("expert_ids", []) if str(x).isdigit()]
    data["order_ids"] = [int(x) for x in values.get("order_ids", []) if str(x).isdigit()]
    if data["scheduled_at"]:  # a datetime-local field is Beijing time
        from datetime import datetime

        try:
            naive = datetime.fromisoformat(str(data["scheduled_at"]))
        except ValueError:
            raise InvalidInput(fields={"scheduled_at": "时间格式应为 YYYY-MM-DD HH:MM"}) from None
        local = clock.to_local(clock.now()).tzinfo
        data["scheduled_at"] = naive.replace(tzinfo=local) if naive.tzinfo is None else naive
    return parse_input(ConsultationIn, data)


@router.post("/consultations/new")
async def consultation_create(request: Request, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    values: dict[str, Any] = {k: str(form.get(k, "") or "") for k in FORM_FIELDS}
    values["expert_ids"] = [str(v) for v in form.getlist("expert_ids")]
    values["order_ids"] = [str(v) for v in form.getlist("order_ids")]
    try:
        with db.begin_nested():
            c = service.request(db, subject, parse_form(values))
    except AppError as exc:
        if exc.status not in (403, 404, 422):
            raise
        errors = errors_of(request, exc)
        if exc.status == 404:
            errors = {"patient_id": t(request, "未找到该患者，或您无权查看")}
        if exc.params and exc.fields:  # e.g. which expert is not qualified, which order is another patient's
            errors["_form"] = t(request, exc.message, **exc.params)
        return render_page(request, "consultation/new.html", _new_context(db, subject, values, errors),
                           422 if exc.status == 404 else exc.status)
    return RedirectResponse(f"/consultations/{c.id}?done=request", status_code=303)


# ------------------------------------------------------------------------------------- case page


def _case_context(db: Session, subject: Subject, consultation_id: Id) -> dict[str, Any]:
    c, side = service.read(db, subject, consultation_id)
    hist = service.history(db, subject, c.id)
    parts = repository.participants(db, c.id)
    ops = repository.opinions(db, c.id)
    msgs = repository.messages(db, c.id)
    prac_ids = {p.practitioner_id for p in parts} | {o.practitioner_id for o in ops}
    practitioners = workforce.practitioners_by_id(db, prac_ids)
    users = accounts.display_names(db, {h.user_id for h in hist} | {m.user_id for m in msgs})
    mine = service.my_participation(db, subject, c)
    moves = [m.value for m in states.next_moves(c.status, side)]

    files = attachments_repo.attachments_of(db, service.SOURCE, c.id)
    return {
        "c": c, "side": side.value, "history": hist, "participants": parts, "practitioners": practitioners,
        "opinions": ops, "messages": msgs, "users": users, "orders": repository.orders(db, c.id), "files": files,
        "names": _names(db, [c.requesting_institution_id, c.consulted_institution_id,
                             *(h.acting_institution_id for h in hist), *(m.institution_id for m in msgs)]),
        "patient": kit.get(db, Patient, c.patient_id), "video_link": service.video_link(c),
        "department": kit.get(db, Department, c.department_id) if c.department_id else None,
        "is_assigner": service.is_assigner(subject, c), "is_expert": mine is not None, "mine": mine,
        "experts": service.qualified_experts(db, c.consulted_institution_id)
        if service.is_assigner(subject, c) and c.status not in FINAL else [],
        "patient_orders": repository.patient_orders(db, c.patient_id) if side == Side.requester and c.status not in FINAL
        else [],
        "moves": moves, "labels": LABELS, "FINAL": FINAL, "errors": {}, "error": None,
        "overdue": c.due_at is not None and c.due_at < clock.now() and c.status not in FINAL,
        "referral_draft": flows.referral_draft(db, c) if "converted" in moves else None,
        "orderable": service.orderable_items(db, c) if side == Side.requester and c.status not in FINAL else [],
        "reports": _reports(db, [o.id for _, o in repository.orders(db, c.id)]),
    }


def _reports(db: Session, order_ids: list[Id]) -> dict[int, Any]:
    """Final reports of the linked orders (the lead hospital's report and advice for cloud outpatient)."""
    return {oid: rep for oid in order_ids if (rep := diagnostics_repo.report_of(db, oid)) is not None}


DONE_FLASH = {"exam": "已开具云门诊检查", "request": "会诊申请已提交", "assign": "已分派专家", "acknowledge": "已确认接诊", "opinion": "会诊意见已签署",
              "message": "消息已发送", "order": "检查资料已添加", "close": "会诊已结案", "cancel": "会诊已取消",
              "convert": "已转为上转转诊", "upload": "附件已上传"}


@router.get("/consultations/report")
def consultation_report(request: Request, db: DB, subject: CurrentSubject, by: str = "month", start: str = "",
                        end: str = "") -> Response:
    require_report_viewer(subject)
    from datetime import date

    def _d(v: str) -> date | None:
        try:
            return date.fromisoformat(v) if v else None
        except ValueError:
            return None

    if by not in repository.GROUPS:
        by = "month"
    lo, hi = _period(_d(start), _d(end))
    rows = repository.figures(db, lo, hi, by=by, institution_ids=report_scope(db, subject))
    chart = {"keys": [r.label for r in rows], "requested": [r.requested for r in rows],
             "answered": [r.answered for r in rows], "avoided": [r.avoided for r in rows],
             "converted": [r.converted for r in rows], "median": [r.median_answer_hours for r in rows]}
    return render_page(request, "consultation/report.html", {
        "rows": rows, "by": by, "start": lo.isoformat(), "end": hi.isoformat(), "chart": chart,
        "totals": repository.totals(rows) if by != "expert" else None})


@router.get("/consultations/{consultation_id}")
def consultation_view(request: Request, consultation_id: Id, db: DB, subject: Clinical, done: str = "") -> Response:
    ctx = _case_context(db, subject, consultation_id)
    if done in DONE_FLASH:
        ctx["flash"] = t(request, DONE_FLASH[done])
    return render_page(request, "consultation/detail.html", ctx)


@router.get("/consultations/{consultation_id}/attachments/{attachment_id}")
def consultation_file(consultation_id: Id, attachment_id: Id, db: DB, subject: Clinical) -> Response:
    from yilianti.attachments import service as attachments

    service.get(db, subject, consultation_id)
    dl = attachments.open_for_download(db, subject, attachment_id, owner=(service.SOURCE, consultation_id))
    return Response(dl.data, media_type=dl.attachment.content_type,
                    headers={"Content-Disposition": dl.content_disposition, "X-Content-Type-Options": "nosniff"})


async def _act(request: Request, db: Session, subject: Subject, consultation_id: Id, action: str) -> None:
    form = await request.form()

    def value(k: str) -> str:
        return str(form.get(k, "") or "")

    expected = value("expected_status") or None
    match action:
        case "assign":
            ids = [int(str(v)) for v in form.getlist("practitioner_ids") if str(v).isdigit()]
            if not ids:
                service.get(db, subject, consultation_id)
                raise InvalidInput(fields={"practitioner_ids": "请选择会诊专家"})
            service.assign(db, subject, consultation_id, AssignIn(practitioner_ids=ids,
                                                                  lead_practitioner_id=opt_int(value("lead"))),
                           expected_status=expected)
        case "acknowledge":
            service.acknowledge(db, subject, consultation_id, expected_status=expected)
        case "opinion":
            data = parse_input(OpinionIn, {"outcome": value("outcome") or None, "text": value("text")})
            service.sign_opinion(db, subject, consultation_id, data, expected_status=expected)
        case "message":
            service.post_message(db, subject, consultation_id, parse_input(MessageIn, {"body": value("body")}))
        case "order":
            order_id = opt_int(value("order_id"))
            if order_id is None:
                service.get(db, subject, consultation_id)
                raise InvalidInput(fields={"order_id": "请选择检查"})
            service.link_order(db, subject, consultation_id, order_id)
        case "exam":
            item_id = opt_int(value("item_id"))
            if item_id is None:
                service.get(db, subject, consultation_id)
                raise InvalidInput(fields={"item_id": "请选择检查项目"})
            service.order_exam(db, subject, consultation_id, item_id, priority=value("priority") or "routine")
        case "close":
            data_close = parse_input(CloseOutIn, {"rating": value("rating") or None, "action_taken": value("action_taken"),
                                                  "avoided_referral": value("avoided_referral") or None})
            service.close_out(db, subject, consultation_id, data_close, expected_status=expected)
        case "cancel":
            service.cancel(db, subject, consultation_id, value("reason"), expected_status=expected)
        case "convert":
            flows.convert_to_referral(db, subject, consultation_id,
                                        ConvertIn(reason=value("reason") or None,
                                                  target_service=value("target_service") or "门诊"),
                                        expected_status=expected)
        case "upload":
            from starlette.datastructures import UploadFile

            from yilianti.attachments import service as attachments

            c, _ = service.get(db, subject, consultation_id)
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise InvalidInput(fields={"file": "请选择文件"})
            if c.status in FINAL:
                raise InvalidInput(fields={"file": "会诊已结束，不能再添加资料"})
            attachments.store(db, subject, c.patient_id, service.SOURCE, c.id, upload.filename,
                              upload.content_type, await upload.read())
        case _:
            service.get(db, subject, consultation_id)
            raise InvalidInput(fields={"action": "取值不在允许范围内"})


@router.post("/consultations/{consultation_id}/{action}")
async def consultation_act(request: Request, consultation_id: Id, action: str, db: DB, subject: Clinical) -> Response:
    try:
        with db.begin_nested():
            await _act(request, db, subject, consultation_id, action)
    except AppError as exc:
        if exc.status not in (403, 409, 413, 415, 422):
            raise
        db.expire_all()
        ctx = _case_context(db, subject, consultation_id)
        ctx["errors"] = {f"{action}.{k}": v for k, v in errors_of(request, exc).items()}
        ctx["error"] = t(request, exc.message, **exc.params) if exc.status == 409 or exc.params else (
            ctx["errors"].get(f"{action}._form") or t(request, "输入有误，请检查标出的字段"))
        ctx["error_action"] = action
        return render_page(request, "consultation/detail.html", ctx, exc.status)
    if action == "convert":
        c, _ = service.get(db, subject, consultation_id)
        return RedirectResponse(f"/referrals/{c.referral_id}?done=submit", status_code=303)
    return RedirectResponse(f"/consultations/{consultation_id}?done={action}", status_code=303)
