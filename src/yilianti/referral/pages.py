"""Referral pages: worklists per side, new referral, detail with the allowed moves, printable 转诊单.

Every action form carries `expected_status` (the status the page showed), so a stale page
answers 409 with the message rendered on the detail page and nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from yilianti.alliance import repository as alliances
from yilianti.auth import repository as accounts
from yilianti.auth.deps import DB, Clinical, ReadDB
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import AppError, InvalidInput, parse_input
from yilianti.kit import clock, listing
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id
from yilianti.models.alliance import Department
from yilianti.models.patient import Patient
from yilianti.models.referral import Referral
from yilianti.models.scheduling import Booking, ClinicSession
from yilianti.patients import service as patients
from yilianti.patients.repository import patients_by_id as patient_rows_by_id
from yilianti.referral import flows, repository, routing, service, states
from yilianti.referral.schemas import ReferralIn, SessionOptionOut
from yilianti.referral.service import apply_move
from yilianti.referral.states import FINAL, REJECT_LABELS, Side, Status
from yilianti.scheduling import repository as sched_repo
from yilianti.transfer import repository as transfer_repo
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response

router = APIRouter(include_in_schema=False)

BUCKET_LABELS = {"to_triage": "待处理", "awaiting_booking": "待预约", "awaiting_arrival": "待到诊",
                 "awaiting_outcome": "待回传结果", "overdue": "已超时", "closed": "已结束", "drafts": "草稿",
                 "all": "全部"}
# to_status → the action name used in URLs and form ids
ACTIONS = {Status.submitted: "submit", Status.received: "receive", Status.accepted: "accept",
           Status.rejected: "reject", Status.returned: "return", Status.forwarded: "forward",
           Status.scheduled: "schedule", Status.arrived: "arrive", Status.did_not_attend: "dna",
           Status.outcome_returned: "outcome", Status.closed: "close", Status.cancelled: "cancel"}
BY_ACTION = {v: k for k, v in ACTIONS.items()}
FORM_FIELDS = ("direction", "patient_id", "to_institution_id", "to_department_id", "reason", "priority",
               "target_service", "permanent", "diagnoses", "key_results", "medications", "allergies",
               "follow_up_plan", "linked_referral_id", "specialty")
PREFILL = ("priority", "reason", "diagnoses", "key_results", "medications", "allergies")


def _names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    return alliances.institution_names(db, ids)


def _patients(db: Session, ids: set[int]) -> dict[int, Patient]:
    return patient_rows_by_id(db, ids)


# ------------------------------------------------------------------------------------- worklist


# the buckets that hold this side's own work, in the order the list opens on the first with rows
WORK_BUCKETS = {Side.receiver: ("to_triage", "awaiting_booking", "awaiting_arrival", "awaiting_outcome"),
                Side.sender: ("overdue", "drafts")}
LIST_PARAMS = ("side", "bucket", "direction", "priority")


def _opening_tab(counts: dict[Side, dict[str, int]]) -> tuple[Side, str]:
    """Where the list opens when the URL names no tab: the first bucket with work for this user."""
    for side, buckets in WORK_BUCKETS.items():
        for bucket in buckets:
            if counts[side][bucket]:
                return side, bucket
    return Side.sender, "all"


@router.get("/referrals")
def referral_list(request: Request, db: DB, reads: ReadDB, subject: Clinical, side: str = "", bucket: str = "",
                  direction: str = "", priority: str = "") -> Response:
    """The worklist: its counts and rows read from the read replica when one is set (auth/deps.ReadDB)."""
    counts = {s: service.worklist_counts(reads, subject, s) for s in (Side.receiver, Side.sender)}
    if not side and not bucket:
        side_, bucket = _opening_tab(counts)
    else:
        side_ = Side.receiver if side == "receiver" else Side.sender
    if bucket not in service.BUCKETS:
        bucket = "all"
    f = service.WorklistFilter(side_, bucket, direction if direction in ("up", "down") else None,
                               priority if priority in ("routine", "urgent", "emergency") else None)
    lp = ListParams.of(request.query_params, keep=LIST_PARAMS)
    lp = replace(lp, extra=(("side", side_.value), ("bucket", bucket),
                            *((k, v) for k, v in lp.extra if k in ("direction", "priority"))))
    if lp.export:
        return _export(request, reads, subject, f, lp)
    pg = service.worklist_page(reads, subject, f, lp)
    rows = pg.items
    now = clock.now()
    return render_page(request, "referral/list.html", {
        "rows": rows, "pg": pg, "lp": lp, "side": side_.value, "bucket": bucket, "direction": f.direction or "",
        "priority": f.priority or "", "counts": counts[side_], "statuses": list(states.STATUS_LABELS.items()),
        "side_counts": {s.value: c["all"] - c["closed"] - (c["drafts"] if s == Side.receiver else 0)
                        for s, c in counts.items()},
        "buckets": BUCKET_LABELS, "names": _names(db, [i for r in rows for i in (r.from_institution_id,
                                                                               r.to_institution_id)]),
        "patients": _patients(reads, {r.patient_id for r in rows}), "now": now, "FINAL": FINAL,
        "tasks": service.follow_up_tasks(db, subject) if side_ == Side.receiver else [],
        "replica_max_lag": reads.info.get("replica_max_lag")})


def _export(request: Request, db: Session, subject: Subject, f: service.WorklistFilter, lp: ListParams) -> Response:
    rows = listing.export_rows(db, service.worklist_statement(subject, f, lp)) if subject.is_clinical else []
    names = _names(db, [i for r in rows for i in (r.from_institution_id, r.to_institution_id)])
    people = _patients(db, {r.patient_id for r in rows})
    headers = [t(request, h) for h in ("编号", "方向", "患者", "发起机构", "接收机构", "优先级", "状态", "创建时间",
                                        "当前步骤截止")]
    body = [(r.id, t(request, r.direction), people[r.patient_id].name if r.patient_id in people else "",
             names.get(r.from_institution_id, ""), names.get(r.to_institution_id, ""), t(request, r.priority),
             t(request, r.status), r.created_at, r.due_at) for r in rows]
    return xlsx_response(t(request, "双向转诊"), headers, body, "referrals")


# ------------------------------------------------------------------------------------- new


def _target_context(db: Session, subject: Subject, values: dict[str, str]) -> dict[str, Any]:
    """The dependent target fields: the alliance's institutions, the chosen one's departments (the one
    matching the searched specialty preselected)."""
    own = subject.acting_institution_id
    targets = [i for i in sched_repo.partner_institutions(db, own) if i.id != own]
    target = opt_int(values.get("to_institution_id"))
    if target is not None and all(i.id != target for i in targets):
        target, values["to_institution_id"], values["to_department_id"] = None, "", ""
    departments = alliances.departments_of(db, target, include_inactive=False) if target else []
    specialty = (values.get("specialty") or "").strip()[:64]
    if all(str(d.id) != values.get("to_department_id") for d in departments):
        values["to_department_id"] = ""
    if specialty and target is not None and not values.get("to_department_id"):
        match = next((d for d in departments if specialty in d.name or specialty in (d.specialty or "")), None)
        if match is not None:
            values["to_department_id"] = str(match.id)
    return {"values": values, "targets": targets, "departments": departments}


def _routing_context(db: Session, subject: Subject, values: dict[str, str],
                     patient: Patient | None) -> dict[str, Any]:
    """Routing help: the alliance's candidates for the requested specialty, with free reserved slots and beds."""
    own = subject.acting_institution_id
    specialty = (values.get("specialty") or "").strip()[:64]
    candidates: list[routing.Candidate] = []
    choose_url = None
    if specialty and own is not None:
        candidates = routing.candidates(db, own, specialty, values.get("direction") or "up", patient)
        choose_url = "/referrals/new?" + urlencode({"direction": values.get("direction") or "up",
                                                    "patient_id": values.get("patient_id") or "",
                                                    "specialty": specialty})
    return {"specialty": specialty, "candidates": candidates, "choose_url": choose_url,
            "routing_days": get_settings().referral_routing_days}


def _linked_context(db: Session, subject: Subject, values: dict[str, str]) -> dict[str, Any]:
    chosen = opt_int(values.get("patient_id"))
    linked: list[Referral] = []
    if chosen is not None and subject.acting_institution_id is not None:
        linked = repository.up_referrals_of_patient_at(db, chosen, subject.acting_institution_id)
    return {"values": values, "linked": linked, "errors": {}}


def _new_context(db: Session, subject: Subject, values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    # only a patient this institution may see: an id in the URL or the form must not reveal anyone else
    patient = patients.picked(db, subject, opt_int(values.get("patient_id")))
    if patient is None:
        values["patient_id"] = ""
    ctx: dict[str, Any] = {"values": values, "errors": errors, "patient": patient}
    ctx.update(_target_context(db, subject, values))
    ctx.update(_routing_context(db, subject, values, patient))
    ctx.update(_linked_context(db, subject, values))
    ctx["errors"] = errors
    return ctx


@router.get("/referrals/new")
def referral_new(request: Request, db: DB, subject: Clinical, patient_id: str = "",
                 direction: str = "up", to_institution_id: str = "", linked_referral_id: str = "",
                 specialty: str = "") -> Response:
    values = {"direction": "down" if direction == "down" else "up", "patient_id": patient_id,
              "to_institution_id": to_institution_id, "linked_referral_id": linked_referral_id,
              "priority": "routine", "permanent": "1", "specialty": specialty}
    # a form another page prefills (a chronic-care alarm's urgent up-referral): text the doctor reviews
    for name in PREFILL:
        if request.query_params.get(name):
            values[name] = request.query_params[name][:2000]
    if values["priority"] not in ("routine", "urgent", "emergency"):
        values["priority"] = "routine"
    if linked_referral_id and patient_id == "":
        link = kit.get(db, Referral, opt_int(linked_referral_id) or 0)
        if link is not None and subject.acting_institution_id in (link.from_institution_id, link.to_institution_id):
            values["patient_id"] = str(link.patient_id)
            values["to_institution_id"] = str(link.from_institution_id)
    return render_page(request, "referral/new.html", _new_context(db, subject, values, {}))


def _form_values(params: Any) -> dict[str, str]:
    return {k: str(params.get(k, "") or "") for k in FORM_FIELDS}


@router.get("/referrals/new/target")
def referral_new_target(request: Request, db: DB, subject: Clinical) -> Response:
    """Fragment: the target institution and its departments, after the institution (or a routing
    candidate) was chosen — filled in place, nothing else on the form is touched."""
    values = _form_values(request.query_params)
    return render_page(request, "referral/_target_fields.html",
                       {**_target_context(db, subject, values), "errors": {}})


@router.get("/referrals/new/candidates")
def referral_new_candidates(request: Request, db: DB, subject: Clinical) -> Response:
    """Fragment: the alliance's candidates for the specialty typed on the form."""
    values = _form_values(request.query_params)
    patient = patients.picked(db, subject, opt_int(values.get("patient_id")))
    return render_page(request, "referral/_routing.html", _routing_context(db, subject, values, patient))


@router.get("/referrals/new/linked")
def referral_new_linked(request: Request, db: DB, subject: Clinical) -> Response:
    """Fragment: the chosen patient's up-referrals this institution received (a down-referral closes one)."""
    values = _form_values(request.query_params)
    if patients.picked(db, subject, opt_int(values.get("patient_id"))) is None:
        values["patient_id"] = ""
    return render_page(request, "referral/_linked.html", _linked_context(db, subject, values))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r", "").split("\n") if line.strip()]


def parse_form(values: dict[str, str]) -> ReferralIn:
    """The form as a ReferralIn: diagnoses as lines "ICD10 文本", follow-up as lines "天数 内容"."""
    fields: dict[str, str] = {}
    diagnoses = []
    for line in _lines(values.get("diagnoses", "")):
        code, _, text = line.partition(" ")
        if not text.strip():
            fields["diagnoses"] = "每行一个诊断：ICD-10 编码 + 空格 + 诊断名称（例如 J18.9 肺炎）"
            break
        diagnoses.append({"icd10": code, "text": text.strip()})
    items = []
    for line in _lines(values.get("follow_up_plan", "")):
        days, _, text = line.partition(" ")
        if not days.isdigit() or not text.strip():
            fields["follow_up_plan"] = "每行一项：天数 + 空格 + 随访内容（例如 7 复查血常规）"
            break
        items.append({"due_in_days": int(days), "text": text.strip()})
    data: dict[str, Any] = {
        "direction": values.get("direction") or "up", "patient_id": values.get("patient_id") or None,
        "to_institution_id": values.get("to_institution_id") or None,
        "to_department_id": values.get("to_department_id") or None, "reason": values.get("reason", ""),
        "priority": values.get("priority") or "routine", "target_service": values.get("target_service") or None,
        "permanent": values.get("permanent") == "1",
        "summary": {"diagnoses": diagnoses, "key_results": values.get("key_results") or None,
                    "medications": _lines(values.get("medications", "")),
                    "allergies": _lines(values.get("allergies", ""))},
        "follow_up_plan": {"items": items} if items else None,
        "linked_referral_id": values.get("linked_referral_id") or None,
    }
    try:
        parsed = parse_input(ReferralIn, data)
    except InvalidInput as exc:
        for key, msg in exc.fields.items():
            name = key
            for prefix, short in (("summary.diagnoses", "diagnoses"), ("follow_up_plan", "follow_up_plan"),
                                  ("summary.", "")):
                if key.startswith(prefix):
                    name = short or key.removeprefix("summary.").split(".")[0]
                    break
            fields.setdefault(name, msg)
        raise InvalidInput(fields=fields) from None
    if fields:
        raise InvalidInput(fields=fields)
    return parsed


@router.post("/referrals/new")
async def referral_create(request: Request, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "") or "") for k in FORM_FIELDS}
    try:
        with db.begin_nested():
            ref = service.draft_and_submit(db, subject, parse_form(values))
    except AppError as exc:
        if exc.status not in (403, 404, 422):
            raise
        errors = errors_of(request, exc)
        if exc.status == 404:  # the patient is not (or no longer) visible to this institution
            errors = {"patient_id": t(request, "未找到该患者，或您无权查看")}
        return render_page(request, "referral/new.html", _new_context(db, subject, values, errors),
                           422 if exc.status == 404 else exc.status)
    return RedirectResponse(f"/referrals/{ref.id}?done=submit", status_code=303)


# ------------------------------------------------------------------------------------- detail


def _durations(history: list[Any]) -> list[timedelta | None]:
    out: list[timedelta | None] = [None]
    for prev, cur in zip(history, history[1:], strict=False):
        out.append(cur.at - prev.at)
    return out


def split_duration(value: timedelta | None) -> tuple[int, int, int] | None:
    """(days, hours, minutes) of a step's duration, for the timeline."""
    if value is None:
        return None
    minutes = max(int(value.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return days, hours, mins


def _detail_context(db: Session, subject: Subject, referral_id: Id) -> dict[str, Any]:
    ref, side = service.get(db, subject, referral_id)
    history = service.history(db, subject, referral_id)
    users = accounts.display_names(db, {h.user_id for h in history})
    names = _names(db, [ref.from_institution_id, ref.to_institution_id,
                        *(h.acting_institution_id for h in history)])
    moves = states.moves_for(ref.status, ref.direction, side)
    bookings: list[tuple[Booking, ClinicSession | None]] = []
    if Status.scheduled in moves:
        bookings = sched_repo.open_bookings_of_patient(db, ref.patient_id)
    forward_targets = [i for i in sched_repo.partner_institutions(db, ref.to_institution_id)
                       if i.id not in (ref.to_institution_id, ref.from_institution_id)] \
        if Status.forwarded in moves else []
    tasks = repository.follow_up_tasks_of(db, ref.id)
    dept = kit.get(db, Department, ref.to_department_id) if ref.to_department_id else None
    spec = routing.referral_specialty(db, ref.to_department_id)
    slot_options: list[SessionOptionOut] = []
    ward_options: list[routing.WardOption] = []
    candidates: list[routing.Candidate] = []
    if Status.scheduled in moves:
        slot_options = routing.session_options(db, ref.from_institution_id, [ref.to_institution_id], spec)
        if spec and not slot_options:  # nothing for the department: show every session of the site
            slot_options = routing.session_options(db, ref.from_institution_id, [ref.to_institution_id], None)
        ward_options = routing.ward_options(db, ref.from_institution_id, [ref.to_institution_id], spec) or \
            routing.ward_options(db, ref.from_institution_id, [ref.to_institution_id], None)
    if Status.forwarded in moves or Status.scheduled in moves:
        candidates = routing.candidates(db, ref.from_institution_id, spec, ref.direction,
                                        kit.get(db, Patient, ref.patient_id))
    transfers = transfer_repo.transfers_of_referral(db, ref.id)
    linked = sched_repo.booking_with_site(db, ref.booking_id) if ref.booking_id else None
    linked_booking = (linked[0], sched_repo.session_loaded(db, linked[0].session_id)) if linked else None
    early_day = (linked_booking[1].day if linked_booking and linked_booking[1]
                 and linked_booking[1].day > clock.today_local() else None)
    return {"ref": ref, "linked_booking": linked_booking, "early_day": early_day, "posted": {}, "side": side.value, "history": history, "durations": _durations(history),
            "users": users, "names": names, "moves": [ACTIONS[m] for m in moves], "bookings": bookings,
            "forward_targets": forward_targets, "tasks": tasks, "department": dept,
            "patient": kit.get(db, Patient, ref.patient_id), "reject_labels": REJECT_LABELS,
            "overdue": ref.due_at is not None and ref.due_at < clock.now() and ref.status not in FINAL,
            "split_duration": split_duration, "errors": {}, "error": None,
            "attachments": service.attachments_of(db, subject, ref.id), "specialty": spec,
            "slot_options": slot_options, "ward_options": ward_options, "candidates": candidates,
            "routing_days": get_settings().referral_routing_days, "transfers": transfers,
            "max_upload": get_settings().attachment_max_bytes, "can_attach": ref.status not in FINAL,
            "current_institution_id": subject.acting_institution_id, "choose_url": None, "error_action": None,
            "arrival_labels": states.ARRIVAL_LABELS, "unbooked_arrival": ref.status == Status.accepted,
            "linked_up": _linked_up(db, subject, ref)}


def _linked_up(db: Session, subject: Subject, ref: Referral) -> Referral | None:
    """The up-referral a down-referral answers, when this institution took part in it (its outcome is the
    discharge summary the grassroots site goes on from)."""
    if ref.direction != "down" or ref.linked_referral_id is None:
        return None
    up = kit.get(db, Referral, ref.linked_referral_id)
    if up is None or subject.acting_institution_id not in (up.from_institution_id, up.to_institution_id):
        return None
    return up


DONE_FLASH = {"submit": "转诊单已提交", "receive": "已接收", "accept": "已同意接收", "reject": "已拒绝",
              "return": "已退回并给出建议", "forward": "已转至其他机构", "schedule": "已关联预约",
              "arrive": "已登记到诊", "dna": "已登记未到诊", "outcome": "已回传诊疗结果", "close": "已结案",
              "cancel": "已取消", "task": "随访任务已完成", "book-slot": "已为转诊预约号源",
              "reserve-bed": "已为转诊预留床位", "attach": "附件已上传", "detach": "附件已删除"}


@router.get("/referrals/{referral_id}")
def referral_view(request: Request, referral_id: Id, db: DB, subject: Clinical, done: str = "") -> Response:
    ctx = _detail_context(db, subject, referral_id)
    if done in DONE_FLASH:
        ctx["flash"] = t(request, DONE_FLASH[done])
    return render_page(request, "referral/detail.html", ctx)


def _page_error(request: Request, db: Session, subject: Subject, referral_id: Id, action: str,
                exc: AppError) -> Response:
    """Re-render the detail page with the error of one action, with its status (nothing was changed)."""
    db.expire_all()
    ctx = _detail_context(db, subject, referral_id)
    ctx["errors"] = {f"{action}.{k}": v for k, v in errors_of(request, exc).items()}
    ctx["error"] = ctx["errors"].get(f"{action}._form") or t(request, "输入有误，请检查标出的字段")
    if exc.status in (409, 413, 415):
        ctx["error"] = t(request, exc.message, **exc.params)
    ctx["error_action"] = action
    return render_page(request, "referral/detail.html", ctx, exc.status)


@router.post("/referrals/{referral_id}/book-slot")
async def referral_book_slot(request: Request, referral_id: Id, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    value = lambda k: str(form.get(k, "") or "")  # noqa: E731
    try:
        with db.begin_nested():
            session_id = opt_int(value("session_id"))
            if session_id is None:
                service.get(db, subject, referral_id)
                raise InvalidInput(fields={"session_id": "请选择出诊时段"})
            pool = value("pool") if value("pool") in ("reserved", "public") else None
            flows.book_slot(db, subject, referral_id, session_id, slot_id=opt_int(value("slot_id")), pool=pool,
                            expected_status=value("expected_status") or None)
    except AppError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return _page_error(request, db, subject, referral_id, "book-slot", exc)
    return RedirectResponse(f"/referrals/{referral_id}?done=book-slot", status_code=303)


@router.post("/referrals/{referral_id}/reserve-bed")
async def referral_reserve_bed(request: Request, referral_id: Id, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    value = lambda k: str(form.get(k, "") or "")  # noqa: E731
    try:
        with db.begin_nested():
            ward_id = opt_int(value("ward_id"))
            if ward_id is None:
                service.get(db, subject, referral_id)
                raise InvalidInput(fields={"ward_id": "请选择病区"})
            hours = opt_int(value("hours")) or 48
            flows.reserve_bed(db, subject, referral_id, ward_id, hours=max(1, min(hours, 24 * 14)),
                              expected_status=value("expected_status") or None)
    except AppError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return _page_error(request, db, subject, referral_id, "reserve-bed", exc)
    return RedirectResponse(f"/referrals/{referral_id}?done=reserve-bed", status_code=303)


@router.post("/referrals/{referral_id}/attachments")
async def referral_attach(request: Request, referral_id: Id, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    upload = form.get("file")
    try:
        with db.begin_nested():
            if not isinstance(upload, UploadFile):
                service.get(db, subject, referral_id)
                raise InvalidInput(fields={"file": "请选择要上传的文件"})
            data = await upload.read(get_settings().attachment_max_bytes + 1)
            service.attach(db, subject, referral_id, upload.filename, upload.content_type, data)
    except AppError as exc:
        if exc.status not in (403, 409, 413, 415, 422):
            raise
        return _page_error(request, db, subject, referral_id, "attach", exc)
    return RedirectResponse(f"/referrals/{referral_id}?done=attach", status_code=303)


@router.get("/referrals/{referral_id}/attachments/{attachment_id}")
def referral_attachment(referral_id: Id, attachment_id: Id, db: DB, subject: Clinical) -> Response:
    got = service.open_attachment(db, subject, referral_id, attachment_id)
    return Response(got.data, media_type=got.attachment.content_type,
                    headers={"Content-Disposition": got.content_disposition, "X-Content-Type-Options": "nosniff"})


@router.post("/referrals/{referral_id}/attachments/{attachment_id}/delete")
def referral_detach(request: Request, referral_id: Id, attachment_id: Id, db: DB, subject: Clinical) -> Response:
    try:
        with db.begin_nested():
            service.delete_attachment(db, subject, referral_id, attachment_id)
    except AppError as exc:
        if exc.status != 403:
            raise
        return _page_error(request, db, subject, referral_id, "attach", exc)
    return RedirectResponse(f"/referrals/{referral_id}?done=detach", status_code=303)


@router.post("/referrals/{referral_id}/{action}")
async def referral_act(request: Request, referral_id: Id, action: str, db: DB, subject: Clinical) -> Response:
    if action not in BY_ACTION:
        service.get(db, subject, referral_id)
        raise InvalidInput(fields={"action": "取值不在允许范围内"})
    form = await request.form()
    value = lambda k: str(form.get(k, "") or "")  # noqa: E731
    try:
        with db.begin_nested():
            result = apply_move(db, subject, referral_id, BY_ACTION[action],
                                expected_status=value("expected_status") or None,
                                reason=value("reason"), reject_code=value("reject_code") or None,
                                booking_id=opt_int(value("booking_id")),
                                to_institution_id=opt_int(value("to_institution_id")),
                                arrival_mode=value("arrival_mode") or None)
    except AppError as exc:
        if exc.status not in (403, 409, 422):
            raise
        db.expire_all()
        ctx = _detail_context(db, subject, referral_id)
        ctx["errors"] = {f"{action}.{k}": v for k, v in errors_of(request, exc).items()}
        ctx["error"] = ctx["errors"].get(f"{action}._form") or t(request, "输入有误，请检查标出的字段")
        if exc.status == 409:
            ctx["error"] = t(request, exc.message, **exc.params)
        ctx["error_action"] = action
        ctx["posted"] = {k: str(v) for k, v in form.items() if k != "csrf_token"}  # the typed text stays
        return render_page(request, "referral/detail.html", ctx, exc.status)
    del result
    return RedirectResponse(f"/referrals/{referral_id}?done={action}", status_code=303)


@router.post("/follow-up-tasks/{task_id}/done")
def task_done(task_id: Id, db: DB, subject: Clinical) -> Response:
    task = service.complete_task(db, subject, task_id)
    return RedirectResponse(f"/referrals/{task.referral_id}?done=task", status_code=303)


# ------------------------------------------------------------------------------------- print


@router.get("/referrals/{referral_id}/print")
def referral_print(request: Request, referral_id: Id, db: DB, subject: Clinical) -> Response:
    ctx = _detail_context(db, subject, referral_id)
    ctx["resident_id"] = sched_repo.resident_ids(db, [ctx["ref"].patient_id]).get(ctx["ref"].patient_id)
    ctx["printed_at"] = clock.now()
    return render_page(request, "referral/print.html", ctx)
