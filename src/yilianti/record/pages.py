"""Shared longitudinal record page and the "who looked at this record" report."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from yilianti.auth.deps import DB, Clinical, CurrentSubject
from yilianti.diagnostics.ecg import service as ecg
from yilianti.diagnostics.imaging.pages import viewer_context
from yilianti.diagnostics.states import REPORT_STATUS_LABELS
from yilianti.kit.schemas import Id
from yilianti.recognition import service as recognition
from yilianti.record import service
from yilianti.record.sources import SOURCES
from yilianti.web.charts import line_chart, reference_band
from yilianti.web.render import render_page

router = APIRouter(include_in_schema=False)


@router.get("/patients/{patient_id}/record")
def record_page(request: Request, patient_id: Id, db: DB, subject: Clinical, kind: str = "") -> Response:
    kinds = service.parse_kinds(kind)
    view = service.shared_record(db, subject, patient_id, kinds)
    return render_page(request, "record/record.html", {
        "view": view, "patient": view.patient, "kind": kind if kinds else "",
        "sources": list(SOURCES.values()), "labels": {s.kind: s.label for s in SOURCES.values()},
        "own": subject.acting_institution_id})


@router.get("/patients/{patient_id}/access-log")
def access_log_page(request: Request, patient_id: Id, db: DB, subject: CurrentSubject, all: int = 0) -> Response:
    patient, rows = service.access_log(db, subject, patient_id, reads_only=not all)
    return render_page(request, "record/access_log.html", {"patient": patient, "rows": rows, "all": all})


# ------------------------------------------------------------------------------ opened from the record


@router.get("/patients/{patient_id}/record/orders/{order_id}")
def record_order(request: Request, patient_id: Id, order_id: Id, db: DB, subject: Clinical) -> Response:
    """The full signed report (and lab values) of an entry, read-only, as the record shows it."""
    detail = service.open_order(db, subject, patient_id, order_id)
    hr = recognition.hr_mark(db, detail.order).label
    return render_page(request, "record/order.html", {"d": detail, "patient": detail.patient, "hr": hr,
                                                      "own": subject.acting_institution_id,
                                                      "report_labels": REPORT_STATUS_LABELS})


@router.get("/patients/{patient_id}/record/orders/{order_id}/images")
def record_images(request: Request, patient_id: Id, order_id: Id, db: DB, subject: Clinical,
                  study: Id | None = None) -> Response:
    """The entry's images in the viewer, read-only (no upload), through the record's access decision."""
    detail = service.open_order(db, subject, patient_id, order_id, view="images")
    ctx = viewer_context(db, subject, detail.order, study)
    ctx.update({"readonly": True, "back_url": f"/patients/{patient_id}/record/orders/{order_id}",
                "ecg_url": f"/patients/{patient_id}/record/orders/{order_id}#ecg"})
    return render_page(request, "diagnostics/viewer.html", ctx)


@router.get("/patients/{patient_id}/record/orders/{order_id}/ecg.svg")
def record_ecg(patient_id: Id, order_id: Id, db: DB, subject: Clinical, layout: str = "3x4") -> Response:
    """The entry's ECG waveform on its paper grid (SVG), read-only, through the record's access decision."""
    detail = service.open_order(db, subject, patient_id, order_id, view="ecg")
    rec = ecg.latest(db, detail.order.id)
    if rec is None:
        return Response(status_code=404)
    return Response(ecg.svg_document(rec, "12x1" if layout == "12x1" else "3x4"), media_type="image/svg+xml",
                    headers={"Cache-Control": "private, no-store"})


@router.get("/patients/{patient_id}/record/labs/{code}")
def record_lab_trend(request: Request, patient_id: Id, code: str, db: DB, subject: Clinical) -> Response:
    """One lab test's values over time: a table and a chart (server-drawn SVG)."""
    trend = service.lab_trend(db, subject, patient_id, code[:64])
    band = next((reference_band(p.reference_range) for p in reversed(trend.points) if reference_band(p.reference_range)),
                None)
    chart = line_chart([(p.at, p.value, bool(p.flags and p.flags != "N")) for p in trend.points
                        if p.value is not None], band)
    return render_page(request, "record/trend.html", {"trend": trend, "patient": trend.patient, "chart": chart,
                                                      "band": band})
