"""ECG pages: import form, the 12 leads on the paper grid, the reader's measurements and conclusion."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.diagnostics.ecg import service as ecg
from yilianti.diagnostics.imaging import service as imaging
from yilianti.exceptions import AppError, InvalidInput
from yilianti.kit import repository as kit
from yilianti.kit.schemas import Id
from yilianti.models.alliance import Institution
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.diagnostics_media import EcgRecording
from yilianti.models.patient import Patient
from yilianti.web.render import render_page

router = APIRouter(include_in_schema=False)


def _context(db: Session, subject: Subject, order: DiagnosticOrder, rec: EcgRecording | None,
              layout: str) -> dict[str, Any]:
    return {
        "order": order, "patient": kit.get(db, Patient, order.patient_id), "rec": rec,
        "paper": ecg.paper(rec, layout) if rec else None, "layout": layout,
        "limits": ecg.MEASURE_LIMITS, "labels": ecg.MEASURE_LABELS,
        "ordering": kit.get(db, Institution, order.ordering_institution_id),
        "may_read": not order.reading_centre_institution_id
        or subject.acting_institution_id == order.reading_centre_institution_id,
        "error": None, "fields": {}, "form": {},
    }


@router.get("/diagnostics/orders/{order_id}/ecg")
def ecg_page(order_id: Id, request: Request, db: DB, subject: Clinical, layout: str = "3x4") -> Response:
    order = imaging.order_for(db, subject, order_id, "diagnostics.ecg_view")
    rec = ecg.latest(db, order.id) or ecg.import_received(db, order)
    return render_page(request, "diagnostics/ecg.html",
                       _context(db, subject, order, rec, "12x1" if layout == "12x1" else "3x4"))


@router.get("/diagnostics/orders/{order_id}/ecg.svg")
def ecg_svg(order_id: Id, db: DB, subject: Clinical, layout: str = "3x4") -> Response:
    order = imaging.order_for(db, subject, order_id, "diagnostics.ecg_view")
    rec = ecg.latest(db, order.id) or ecg.import_received(db, order)
    if rec is None:
        return Response(status_code=404)
    return Response(ecg.svg_document(rec, "12x1" if layout == "12x1" else "3x4"), media_type="image/svg+xml")


@router.post("/diagnostics/orders/{order_id}/ecg/import")
async def ecg_import(order_id: Id, request: Request, db: DB, subject: Clinical) -> Response:
    order = imaging.order_for(db, subject, order_id, "diagnostics.ecg_import")
    form = await request.form()
    upload = form.get("file")
    rate_text = str(form.get("sample_rate_hz") or "").strip()
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInput("请选择心电图文件", fields={"file": "请选择心电图文件"})
        try:
            rate = float(rate_text) if rate_text else None
        except ValueError:
            raise InvalidInput(fields={"sample_rate_hz": "采样率必须是数字"}) from None
        source, wf = ecg.parse_upload(upload.filename, await upload.read(), rate)
    except AppError as exc:
        ctx = _context(db, subject, order, ecg.latest(db, order.id), "3x4")
        ctx.update(error=exc.message, fields=exc.fields)
        return render_page(request, "diagnostics/ecg.html", ctx, status_code=exc.status)
    ecg.store(db, subject, order, wf, source, filename=upload.filename)
    return RedirectResponse(f"/diagnostics/orders/{order.id}/ecg", status_code=303)


@router.post("/diagnostics/ecg/{rec_id}/reading")
async def ecg_reading(rec_id: Id, request: Request, db: DB, subject: Clinical) -> Response:
    rec, order = ecg.recording_for(db, subject, rec_id, "diagnostics.ecg_view")
    form = await request.form()
    values: dict[str, str | int | None] = {k: str(form.get(k) or "") for k in ecg.MEASURE_LIMITS}
    try:
        ecg.save_reading(db, subject, rec, order, values, str(form.get("conclusion") or ""),
                         str(form.get("rhythm") or ""))
    except AppError as exc:
        ctx = _context(db, subject, order, kit.get(db, EcgRecording, rec_id), "3x4")
        ctx.update(error=exc.message, fields=exc.fields, form=dict(form))
        return render_page(request, "diagnostics/ecg.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/diagnostics/orders/{order.id}/ecg?saved=1", status_code=303)


@router.get("/diagnostics/orders/{order_id}/ecg/summary")
def ecg_summary(order_id: Id, request: Request, db: DB, subject: Clinical) -> Response:
    """The ECG's measurements and conclusion as a fragment for the report editor (loaded by htmx)."""
    order = imaging.order_for(db, subject, order_id, "diagnostics.ecg_view")
    rec = ecg.latest(db, order.id) or ecg.import_received(db, order)
    return render_page(request, "diagnostics/ecg_summary.html",
                       {"order": order, "rec": rec, "lines": ecg.report_lines(rec) if rec else []})
