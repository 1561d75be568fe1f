"""Diagnostics workflow pages: catalogue, order form, site orders, centre worklist (htmx claim),
report editor and signature, printable report, TAT chart, critical values, inbound quarantine.

Action forms carry `expected_status` where a stale page matters; errors are shown on the
page that was acted on (403/409/422), 404 stays a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from yilianti.alliance import repository as alliances
from yilianti.auth import repository as accounts
from yilianti.auth.deps import DB, Clinical, CurrentSubject, ReadDB
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.diagnostics import repository, states
from yilianti.diagnostics.dicomweb import service as dicomweb
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.reading import critical
from yilianti.diagnostics.reading import service as reading
from yilianti.diagnostics.receivers import hl7_rules, ingest, mllp
from yilianti.diagnostics.states import Side, Status
from yilianti.exceptions import AppError, Forbidden, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.kit.schemas import Id
from yilianti.models.diagnostics import DiagnosticItem, DiagnosticOrder
from yilianti.models.patient import Patient
from yilianti.models.workforce import Practitioner
from yilianti.patients import service as patients
from yilianti.recognition import ordering
from yilianti.recognition import service as recognition
from yilianti.scheduling import repository as sched_repo
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response
from yilianti.workforce import repository as workforce

router = APIRouter(include_in_schema=False)

LABELS = {"status": states.STATUS_LABELS, "priority": states.PRIORITY_LABELS, "kind": states.KIND_LABELS,
          "report": states.REPORT_STATUS_LABELS}


def yuan(fen: int | None) -> str:
    return "—" if fen is None else f"{fen / 100:.2f}"


def _ctx(extra: dict[str, Any]) -> dict[str, Any]:
    return {"L": LABELS, "yuan": yuan, **extra}


def _is_centre(db: Session, subject: Subject) -> bool:
    return repository.is_reading_centre(db, subject.acting_institution_id)


@router.get("/diagnostics")
def diagnostics_home(db: DB, subject: CurrentSubject) -> Response:
    if not subject.is_clinical:  # administrators keep the catalogue
        target = "/diagnostics/catalogue"
    elif _is_centre(db, subject) and subject.has("reader"):
        target = "/diagnostics/worklist"
    else:
        target = "/diagnostics/orders"
    return RedirectResponse(target, status_code=303)


# ------------------------------------------------------------------------------------- catalogue


def _can_admin(subject: Subject, centre_id: Id | None = None) -> bool:
    return subject.is_system_admin or bool(subject.alliance_admin_of) or (
        subject.has("institution_admin") and (centre_id is None or subject.acting_institution_id == centre_id))


@router.get("/diagnostics/catalogue")
def catalogue_page(request: Request, db: DB, subject: CurrentSubject, centre_id: str = "") -> Response:
    centre = opt_int(centre_id)
    rows = workflow.catalogue(db, for_institution_id=subject.acting_institution_id, centre_id=centre,
                              active_only=not _can_admin(subject))
    centres = repository.reading_centre_choices(db)
    return render_page(request, "diagnostics/catalogue.html", _ctx({
        "rows": rows, "centres": centres, "centre_id": centre, "can_admin": _can_admin(subject)}))


def _item_context(db: Session, subject: Subject, item: DiagnosticItem | None, values: dict[str, str],
                  errors: dict[str, str]) -> dict[str, Any]:
    own = subject.acting_institution_id
    centres = [(i.id, i.name) for i in alliances.all_institutions(db)
               if subject.is_system_admin or subject.alliance_admin_of or i.id == own]
    members = [(i.id, i.name) for i in sched_repo.partner_institutions(db, item.reading_centre_institution_id)] \
        if item else []
    return _ctx({"item": item, "values": values, "errors": errors, "centres": centres, "members": members,
                 "prices": repository.prices_of(db, item.id) if item else []})


ITEM_FIELDS = ("code", "name", "name_en", "kind", "modality", "loinc_code", "local_code", "expected_tat_minutes",
               "centre_id", "active")


@router.get("/diagnostics/catalogue/new")
def item_new(request: Request, db: DB, subject: CurrentSubject) -> Response:
    if not _can_admin(subject):
        raise Forbidden("只有管理员可以维护检查项目目录")
    values = {"kind": "imaging", "expected_tat_minutes": "120", "active": "1",
              "centre_id": str(subject.acting_institution_id or "")}
    return render_page(request, "diagnostics/item.html", _item_context(db, subject, None, values, {}))


@router.get("/diagnostics/catalogue/{item_id}")
def item_edit(request: Request, item_id: Id, db: DB, subject: CurrentSubject) -> Response:
    item = kit.get_or_404(db, DiagnosticItem, item_id)
    if not _can_admin(subject, item.reading_centre_institution_id):
        raise Forbidden("只有管理员可以维护检查项目目录")
    values = {"code": item.code, "name": item.name, "name_en": item.name_en or "", "kind": item.kind,
              "modality": item.modality or "", "loinc_code": item.loinc_code or "", "local_code": item.local_code or "",
              "expected_tat_minutes": str(item.expected_tat_minutes), "centre_id": str(item.reading_centre_institution_id),
              "active": "1" if item.active else ""}
    return render_page(request, "diagnostics/item.html", _item_context(db, subject, item, values, {}))


@router.post("/diagnostics/catalogue/save")
async def item_save(request: Request, db: DB, subject: CurrentSubject) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "") or "") for k in ITEM_FIELDS}
    item_id = opt_int(str(form.get("item_id", "") or ""))
    try:
        with db.begin_nested():
            item = workflow.save_item(
                db, subject, item_id=item_id, centre_id=opt_int(values["centre_id"]) or 0, code=values["code"],
                name=values["name"], kind=values["kind"], modality=values["modality"],
                loinc_code=values["loinc_code"], local_code=values["local_code"],
                expected_tat_minutes=opt_int(values["expected_tat_minutes"]) or 0, active=values["active"] == "1",
                name_en=values["name_en"])
    except AppError as exc:
        if exc.status not in (403, 422):
            raise
        current = kit.get(db, DiagnosticItem, item_id) if item_id else None
        return render_page(request, "diagnostics/item.html",
                           _item_context(db, subject, current, values, errors_of(request, exc)), exc.status)
    return RedirectResponse(f"/diagnostics/catalogue/{item.id}?saved=1", status_code=303)


@router.post("/diagnostics/catalogue/{item_id}/prices")
async def item_price(request: Request, item_id: Id, db: DB, subject: CurrentSubject) -> Response:
    form = await request.form()
    raw = str(form.get("price_yuan", "") or "").strip()
    try:
        fen = round(float(raw) * 100)
    except ValueError:
        fen = -1
    try:
        with db.begin_nested():
            workflow.set_price(db, subject, item_id, opt_int(str(form.get("institution_id", ""))) or 0, fen,
                               str(form.get("fee_standard", "") or ""))
    except AppError as exc:
        if exc.status not in (403, 422):
            raise
        item = kit.get(db, DiagnosticItem, item_id)
        values = {"code": item.code if item else "", "name": item.name if item else ""}
        return render_page(request, "diagnostics/item.html",
                           _item_context(db, subject, item, values, errors_of(request, exc)), exc.status)
    return RedirectResponse(f"/diagnostics/catalogue/{item_id}?saved=1", status_code=303)


# ------------------------------------------------------------------------------------- ordering


ORDER_FIELDS = ("patient_id", "priority", "clinical_question")


def _order_values(params: Any) -> tuple[dict[str, str], list[int], dict[int, ordering.Choice]]:
    """The form's values, its chosen item ids (`item_ids`, or one `item_id`) and each item's recognition choice."""
    values = {k: str(params.get(k, "") or "") for k in ORDER_FIELDS}
    ids: list[int] = []
    for raw in [*params.getlist("item_ids"), params.get("item_id") or ""]:
        got = opt_int(str(raw))
        if got is not None and got not in ids:
            ids.append(got)
    choices = {i: ordering.Choice(choice=str(params.get(f"choice_{i}", "") or ""),
                                  reason_code=str(params.get(f"reason_code_{i}", "") or ""),
                                  reason_text=str(params.get(f"reason_text_{i}", "") or ""),
                                  informed=params.get(f"informed_{i}") == "1") for i in ids}
    return values, ids, choices


def _check_context(db: Session, subject: Subject, patient: Patient | None, item_ids: list[int],
                   choices: dict[int, ordering.Choice], errors: dict[str, str]) -> dict[str, Any]:
    rows = ordering.chosen_rows(db, subject, item_ids)
    checks = ordering.check(db, subject, patient.id, rows) if patient is not None else []
    return {"checks": checks, "choices": choices, "errors": errors, "patient": patient,
            "reasons": recognition.RETEST_REASONS}


def _order_form(db: Session, subject: Subject, values: dict[str, str], item_ids: list[int],
                choices: dict[int, ordering.Choice], errors: dict[str, str]) -> dict[str, Any]:
    own = subject.acting_institution_id
    assert own is not None
    patient = patients.picked(db, subject, opt_int(values.get("patient_id")))
    ctx = _check_context(db, subject, patient, item_ids, choices, errors)
    ctx.update({"values": values, "item_ids": item_ids, "items": workflow.orderable(db, own)})
    return _ctx(ctx)


@router.get("/diagnostics/orders/new")
def order_new(request: Request, db: DB, subject: Clinical) -> Response:
    values, item_ids, choices = _order_values(request.query_params)
    values["priority"] = values["priority"] or "routine"
    return render_page(request, "diagnostics/order_new.html", _order_form(db, subject, values, item_ids, choices, {}))


@router.get("/diagnostics/orders/new/check")
def order_new_check(request: Request, db: DB, subject: Clinical) -> Response:
    """Fragment: each chosen item's recognised results for the chosen patient, with the reuse / re-test choice."""
    values, item_ids, choices = _order_values(request.query_params)
    patient = patients.picked(db, subject, opt_int(values.get("patient_id")))
    return render_page(request, "diagnostics/_order_check.html",
                       _ctx(_check_context(db, subject, patient, item_ids, choices, {})))


@router.post("/diagnostics/orders/new")
async def order_create(request: Request, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    values, item_ids, choices = _order_values(form)
    try:
        with db.begin_nested():
            placed = ordering.place(db, subject, patient_id=opt_int(values["patient_id"]) or 0, item_ids=item_ids,
                                    choices=choices, priority=values["priority"] or "routine",
                                    clinical_question=values["clinical_question"])
    except AppError as exc:
        if exc.status not in (403, 404, 409, 422):
            raise
        db.expire_all()
        errors = errors_of(request, exc)
        if exc.status == 404:
            errors = {"patient_id": t(request, "未找到该患者，或您无权查看")}
        elif exc.status in (403, 409):
            errors = {"_form": t(request, exc.message, **exc.params)}
        if "item_id" in errors:
            errors["item_ids"] = errors.pop("item_id")
        return render_page(request, "diagnostics/order_new.html",
                           _order_form(db, subject, values, item_ids, choices, errors),
                           422 if exc.status == 404 else exc.status)
    if len(placed.orders) == 1 and not placed.reused:
        return RedirectResponse(f"/diagnostics/orders/{placed.orders[0].id}?done=ordered", status_code=303)
    return RedirectResponse(f"/diagnostics/orders?placed={len(placed.orders)}&reused={len(placed.reused)}",
                            status_code=303)


def _orders_sheet(request: Request, rows: list[workflow.OrderRow], title: str, name: str) -> Response:
    """An order list's filtered rows as the xlsx a user downloads (the order list and the reading worklist)."""
    head = ("检查号", "患者", "检查项目", "申请机构", "阅片中心", "优先级", "状态", "等待（分钟）", "申请时间", "报告时间")
    body = [(r.order.accession_number, r.patient_name, r.order.item_name, r.ordering_name, r.centre_name,
             t(request, LABELS["priority"].get(r.order.priority, r.order.priority)),
             t(request, LABELS["status"].get(r.order.status, r.order.status)), r.waiting_minutes, r.order.created_at,
             r.order.reported_at) for r in rows]
    return xlsx_response(t(request, title), [t(request, h) for h in head], body, name)


@router.get("/diagnostics/orders")
def order_list(request: Request, db: DB, reads: ReadDB, subject: Clinical, status: str = "", view: str = "site",
               placed: str = "", reused: str = "") -> Response:
    centre = view == "centre" and _is_centre(db, subject)
    lp = replace(ListParams.of(request.query_params), extra=(("view", "centre" if centre else "site"),))
    pg = workflow.orders_page(reads, subject, lp, centre=centre)
    rows = pg.items
    if lp.export:
        return _orders_sheet(request, rows, "检查申请", "orders")
    return render_page(request, "diagnostics/orders.html", _ctx({
        "rows": rows, "pg": pg, "lp": lp, "status": lp.status, "view": "centre" if centre else "site",
        "statuses": list(states.STATUS_LABELS.items()),
        "is_centre": _is_centre(db, subject), "replica_max_lag": reads.info.get("replica_max_lag"),
        "flash": t(request, "已开具{n}项检查申请，{m}项采用互认结果（不再检查）", n=opt_int(placed) or 0,
                   m=opt_int(reused) or 0) if placed or reused else None}))


# ------------------------------------------------------------------------------------- detail and moves


def _detail_context(db: Session, subject: Subject, order_id: Id, error: str | None = None) -> dict[str, Any]:
    order, sides = workflow.get(db, subject, order_id)
    report = repository.report_of(db, order.id)
    names = alliances.all_institution_names(db)
    users = accounts.display_names(db, {i for i in (order.ordering_user_id, order.claimed_by_user_id,
                                                    report.signed_by_user_id if report else None,
                                                    report.second_signer_user_id if report else None) if i})
    practitioners = workforce.practitioners_by_id(db, {i for i in (
        report.signed_by_practitioner_id if report else None,
        report.second_signer_practitioner_id if report else None) if i})
    show_report = report is not None and (Side.centre in sides or order.status in states.RESULTED)
    moves = []
    st = order.status
    if Side.site in sides:
        if st == Status.ordered:
            moves.append("acquire")
        if st in (Status.ordered, Status.acquired):
            moves.append("transmit")
    if Side.centre in sides:
        if st in states.BEFORE_RECEIPT:
            moves.append("receive")
        if st == Status.received and subject.has(*reading.READING_ROLES):
            moves.append("claim")
        if st == Status.claimed and (order.claimed_by_user_id == subject.user_id or reading.can_assign(db, subject)):
            moves.append("release")
    if st in (*states.BEFORE_RECEIPT, Status.received) and sides & {Side.site, Side.centre}:
        moves.append("cancel")
    can_edit = Side.centre in sides and (
        (st == Status.claimed and order.claimed_by_user_id == subject.user_id)
        or st == Status.reported or st in states.RESULTED) and subject.has(*reading.READING_ROLES)
    return _ctx({
        "order": order, "sides": {s.value for s in sides}, "report": report if show_report else None,
        "patient": kit.get(db, Patient, order.patient_id), "names": names, "users": users,
        "practitioners": practitioners, "history": workflow.history(db, subject, order.id),
        "observations": repository.observations_of(db, order.id), "moves": moves, "can_edit": can_edit,
        "error": error, "overdue": order.due_at is not None and order.reported_at is None and clock.now() > order.due_at,
        "item": kit.get(db, DiagnosticItem, order.item_id) if order.item_id else None,
        "hr_mark": _hr_mark(db, order), "ohif_url": dicomweb.ohif_url(db, order)})


def _hr_mark(db: Session, order: DiagnosticOrder) -> str:
    """The mutual-recognition mark ("HR 京津冀") the result carries, decided by QC on its date (DOMAIN §6)."""
    return recognition.hr_mark(db, order).label


@router.get("/diagnostics/orders/{order_id}")
def order_detail(request: Request, order_id: Id, db: DB, subject: Clinical) -> Response:
    return render_page(request, "diagnostics/detail.html", _detail_context(db, subject, order_id))


def _assigners(db: Session, subject: Subject) -> list[tuple[int, str]]:
    if not reading.can_assign(db, subject):
        return []
    return [(u.id, u.display_name) for u in reading.readers_of(db, subject.acting_institution_id or 0)]


def _row_response(request: Request, db: Session, subject: Subject, order_id: Id, error: str | None) -> HTMLResponse:
    rows = [r for r in reading.worklist(db, subject) if r.order.id == order_id]
    return render_page(request, "diagnostics/_worklist_row.html", _ctx({
        "r": rows[0] if rows else None, "order_id": order_id, "error": error, "me": subject.user_id,
        "readers": _assigners(db, subject)}), 409 if error and not rows else 200)


ORDER_ACTIONS = ("acquire", "transmit", "receive", "claim", "assign", "release", "cancel")


async def order_action(request: Request, order_id: Id, db: DB, subject: Clinical) -> Response:
    """One handler for each explicit action path (explicit, so other routes under an order stay reachable)."""
    action = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    form = await request.form()
    expected = str(form.get("expected_status", "") or "") or None
    reason = str(form.get("reason", "") or "")
    htmx = request.headers.get("hx-request") == "true"
    try:
        with db.begin_nested():
            match action:
                case "acquire":
                    workflow.mark_acquired(db, subject, order_id, expected_status=expected)
                case "transmit":
                    workflow.mark_transmitted(db, subject, order_id, expected_status=expected)
                case "receive":
                    workflow.mark_received(db, subject, order_id, expected_status=expected)
                case "claim":
                    reading.claim(db, subject, order_id)
                case "assign":
                    reading.assign(db, subject, order_id, opt_int(str(form.get("reader_user_id", ""))) or 0)
                case "release":
                    reading.release(db, subject, order_id)
                case "cancel":
                    workflow.cancel(db, subject, order_id, reason, expected_status=expected)
                case _:
                    raise NotFound()
    except AppError as exc:
        if exc.status not in (403, 409, 422):
            raise
        message = next(iter(errors_of(request, exc).values()))
        if htmx:
            return _row_response(request, db, subject, order_id, message)
        return render_page(request, "diagnostics/detail.html", _detail_context(db, subject, order_id, message),
                           exc.status)
    if htmx:
        return _row_response(request, db, subject, order_id, None)
    if action == "claim":
        return RedirectResponse(f"/diagnostics/orders/{order_id}/report", status_code=303)
    return RedirectResponse(f"/diagnostics/orders/{order_id}?done={action}", status_code=303)


for _action in ORDER_ACTIONS:
    router.add_api_route(f"/diagnostics/orders/{{order_id}}/{_action}", order_action, methods=["POST"],
                         name=f"diagnostics_order_{_action}")


# ------------------------------------------------------------------------------------- worklist


@router.get("/diagnostics/worklist")
def worklist_page(request: Request, db: DB, subject: Clinical, pending: str = "", priority: str = "") -> Response:
    priority = priority if priority in states.PRIORITY_RANK else ""
    lp = ListParams.of(request.query_params, keep=("pending", "priority"))
    pg = reading.worklist_page(db, subject, lp, include_pending=pending == "1", priority=priority or None)
    if lp.export:
        return _orders_sheet(request, pg.items, "阅片工作列表", "worklist")
    statuses = [s for s in states.STATUS_LABELS.items()
                if s[0] in states.WORKLIST or (pending == "1" and s[0] in states.BEFORE_RECEIPT)]
    return render_page(request, "diagnostics/worklist.html", _ctx({
        "rows": pg.items, "pg": pg, "lp": lp, "statuses": statuses, "pending": pending == "1", "priority": priority,
        "me": subject.user_id, "readers": _assigners(db, subject)}))


# ------------------------------------------------------------------------------------- report


def _measurements(text: str) -> dict[str, Any] | None:
    """Lines `name: value` (or `name=value`) as a dict; numbers kept as numbers."""
    out: dict[str, Any] = {}
    for line in text.replace("\r", "").split("\n"):
        key, sep, value = line.replace("＝", "=").replace("：", ":").partition(":")
        if not sep:
            key, sep, value = line.partition("=")
        if sep and key.strip():
            v = value.strip()
            try:
                out[key.strip()] = float(v) if "." in v else int(v)
            except ValueError:
                out[key.strip()] = v
    return out or None


def _ecg_measurements(db: Session, order: DiagnosticOrder) -> str:
    """HR / PR / QRS / QT / QTc / axis of the order's ECG (the reader's values on the ECG page, which start
    from the cart's or the automatic ones) as the editor's measurement lines; '' when no waveform came.

    Only offered while the report holds no measurements of its own: once the reader saved theirs,
    the editor shows those (the reader's edit wins)."""
    from yilianti.diagnostics.ecg import service as ecg

    rec = ecg.latest(db, order.id) or ecg.import_received(db, order)
    return "\n".join(ecg.report_lines(rec)) if rec else ""


def _editor(request: Request, db: Session, subject: Subject, order_id: Id, values: dict[str, str] | None = None,
            errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    ctx = _detail_context(db, subject, order_id)
    order, report = ctx["order"], repository.report_of(db, order_id)
    if Side.centre.value not in ctx["sides"]:
        raise NotFound()
    ecg_prefilled = False
    if values is None:
        m = report.measurements if report and report.measurements else {}
        values = {"findings": (report.findings or "") if report else "",
                  "conclusion": (report.conclusion or "") if report else "",
                  "measurements": "\n".join(f"{k}: {v}" for k, v in m.items()),
                  "critical": "1" if report and report.critical else ""}
        if not m and order.kind == "ecg" and order.status == Status.claimed:
            values["measurements"] = _ecg_measurements(db, order)
            ecg_prefilled = bool(values["measurements"])
    practitioner = kit.get(db, Practitioner, subject.practitioner_id) if subject.practitioner_id else None
    ctx.update({"values": values, "errors": errors or {}, "report": report, "ecg_prefilled": ecg_prefilled,
                "me_trainee": bool(
        practitioner and practitioner.is_trainee), "mode": (
        "write" if order.status == Status.claimed else "second" if order.status == Status.reported
        else "amend" if order.status in states.RESULTED else "none")})
    return render_page(request, "diagnostics/report_edit.html", ctx, status)


@router.get("/diagnostics/orders/{order_id}/report")
def report_editor(request: Request, order_id: Id, db: DB, subject: Clinical) -> Response:
    return _editor(request, db, subject, order_id)


@router.post("/diagnostics/orders/{order_id}/report")
async def report_save(request: Request, order_id: Id, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "") or "") for k in ("findings", "conclusion", "measurements", "critical",
                                                      "reason", "action")}
    action = values["action"] or "save"
    kw: dict[str, Any] = {"findings": values["findings"], "conclusion": values["conclusion"]}
    try:
        with db.begin_nested():
            if action == "save":
                reading.save_report(db, subject, order_id, measurements=_measurements(values["measurements"]),
                                     critical=values["critical"] == "1", **kw)
            elif action == "sign":
                reading.sign(db, subject, order_id, measurements=_measurements(values["measurements"]),
                              critical=values["critical"] == "1", **kw)
            elif action == "second":
                reading.second_sign(db, subject, order_id, conclusion=values["conclusion"])
            elif action == "amend":
                reading.amend(db, subject, order_id, reason=values["reason"], **kw)
            else:
                raise NotFound()
    except AppError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return _editor(request, db, subject, order_id, values, errors_of(request, exc), exc.status)
    if action == "save":
        return RedirectResponse(f"/diagnostics/orders/{order_id}/report?saved=1", status_code=303)
    return RedirectResponse(f"/diagnostics/orders/{order_id}?done={action}", status_code=303)


@router.get("/diagnostics/orders/{order_id}/print")
def report_print(request: Request, order_id: Id, db: DB, subject: Clinical) -> Response:
    ctx = _detail_context(db, subject, order_id)
    if ctx["report"] is None or ctx["order"].status not in states.RESULTED | {Status.reported}:
        raise NotFound("该检查尚无可打印的报告")
    return render_page(request, "diagnostics/print.html", ctx)


# ------------------------------------------------------------------------------------- TAT


@router.get("/diagnostics/tat")
def tat_page(request: Request, db: DB, subject: Clinical, by: str = "item", months: int = Query(6, ge=1, le=36)) -> Response:
    by = "centre" if by == "centre" else "item"
    months = max(1, min(months, 24))
    rows = reading.tat_stats(db, subject, by=by, months=months)
    monthly = reading.tat_monthly(db, subject, months=months)
    chart = {"months": [m.month for m in monthly], "median": [round(m.median) for m in monthly],
             "p90": [round(m.p90) for m in monthly], "count": [m.count for m in monthly]}
    return render_page(request, "diagnostics/tat.html", _ctx({
        "rows": rows, "by": by, "months": months, "monthly": monthly, "chart": chart}))


# ------------------------------------------------------------------------------------- critical values


@router.get("/diagnostics/critical")
def critical_page(request: Request, db: DB, subject: Clinical, show: str = "open", error: str = "") -> Response:
    rows = critical.list_for(db, subject, open_only=show != "all")
    return render_page(request, "diagnostics/critical.html", _ctx({"rows": rows, "show": show, "error": error}))


@router.post("/diagnostics/critical/{cv_id}/ack")
async def critical_ack(request: Request, cv_id: Id, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    try:
        with db.begin_nested():
            critical.acknowledge(db, subject, cv_id, str(form.get("note", "") or ""))
    except AppError as exc:
        if exc.status not in (403, 409):
            raise
        rows = critical.list_for(db, subject)
        return render_page(request, "diagnostics/critical.html", _ctx({
            "rows": rows, "show": "open", "error": next(iter(errors_of(request, exc).values()))}), exc.status)
    return RedirectResponse("/diagnostics/critical?done=ack", status_code=303)


# ------------------------------------------------------------------------------------- quarantine


@router.get("/diagnostics/quarantine")
def quarantine_page(request: Request, db: DB, subject: Clinical, error: str = "") -> Response:
    if not subject.has(*ingest.QUARANTINE_ROLES):
        raise Forbidden("只有阅片中心人员或管理员可以处理隔离消息")
    return render_page(request, "diagnostics/quarantine.html", _quarantine_ctx(db, subject, error))


def _quarantine_ctx(db: Session, subject: Subject, error: str | None, notice: str | None = None) -> dict[str, Any]:
    """Quarantined (AE) and refused (AR) messages; the suggested patient's name only for a patient the
    subject may see; what arrived, as the sender's character set reads it."""
    items = ingest.list_quarantine(db)
    suggested = {m.id: kit.get(db, Patient, m.suggested_patient_id) for m in items
                 if m.suggested_patient_id and policy.decide(db, subject, m.suggested_patient_id) is not None}
    hidden = {m.id for m in items if m.suggested_patient_id and m.id not in suggested}
    candidates = {m.id: ingest.candidate_orders(db, subject, m) for m in items if m.status == "quarantined"}
    charsets = mllp.SenderCharsets(get_settings().hl7_charsets)
    previews = {m.id: ingest.preview(m, charsets) for m in items if m.channel == "hl7"}
    return _ctx({"items": items, "suggested": suggested, "hidden": hidden, "candidates": candidates,
                 "previews": previews, "reason_labels": hl7_rules.LABELS,
                 "status_labels": ingest.INBOUND_STATUS_LABELS, "error": error, "notice": notice})


def _quarantine_action(request: Request, db: Session, subject: Subject, done: str,
                       action: Callable[[], object]) -> Response:
    """Run one quarantine decision in a savepoint: back to the list, or the list with the refusal shown."""
    try:
        with db.begin_nested():
            action()
    except AppError as exc:
        if exc.status not in (403, 409, 422):
            raise
        message = next(iter(errors_of(request, exc).values()))
        return render_page(request, "diagnostics/quarantine.html", _quarantine_ctx(db, subject, message), exc.status)
    return RedirectResponse(f"/diagnostics/quarantine?done={done}", status_code=303)


@router.post("/diagnostics/quarantine/{inbound_id}/resolve")
async def quarantine_resolve(request: Request, inbound_id: Id, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    order_id = opt_int(str(form.get("order_id", "") or ""))
    if order_id is None:
        acc = str(form.get("accession_number", "") or "").strip()
        order_id = repository.order_id_by_accession(db, acc) or 0
    return _quarantine_action(request, db, subject, "resolve",
                              lambda: ingest.resolve(db, subject, inbound_id, order_id))


@router.post("/diagnostics/quarantine/{inbound_id}/reprocess")
def quarantine_reprocess(request: Request, inbound_id: int, db: DB, subject: Clinical) -> Response:
    """Run a kept HL7 message through the ingest again (after its sender's character set was configured,
    say); when it is still not stored, the list shows why."""
    outcomes: list[ingest.Hl7Outcome] = []
    charsets = mllp.SenderCharsets(get_settings().hl7_charsets)
    response = _quarantine_action(request, db, subject, "reprocess",
                                  lambda: outcomes.append(ingest.reprocess(db, subject, inbound_id, charsets)))
    if outcomes and outcomes[0].code != "AA":
        return render_page(request, "diagnostics/quarantine.html", _quarantine_ctx(
            db, subject, None, t(request, "仍未能接收：{reason}", reason=outcomes[0].reason or "")))
    return response


@router.post("/diagnostics/quarantine/{inbound_id}/reject")
async def quarantine_reject(request: Request, inbound_id: Id, db: DB, subject: Clinical) -> Response:
    form = await request.form()
    reason = str(form.get("reason", "") or "")
    return _quarantine_action(request, db, subject, "reject",
                              lambda: ingest.reject_inbound(db, subject, inbound_id, reason))
