"""Imaging pages: the order's studies in the browser viewer, with the DICOM upload form."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.diagnostics import repository as diagnostics_repo
from yilianti.diagnostics.imaging import service as imaging
from yilianti.kit import repository as kit
from yilianti.kit.schemas import Id
from yilianti.models.alliance import Institution
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import Patient
from yilianti.web.render import render_page

router = APIRouter(include_in_schema=False)


def viewer_context(db: Session, subject: Subject, order: DiagnosticOrder, study_id: Id | None) -> dict[str, Any]:
    studies = diagnostics_repo.studies_of_order(db, order.id)
    current = next((s for s in studies if s.id == study_id), studies[0] if studies else None)
    series = imaging.series_json(imaging.series_of(db, current)) if current else []
    centre = kit.get(db, Institution, order.reading_centre_institution_id) if order.reading_centre_institution_id else None
    return {
        "order": order, "patient": kit.get(db, Patient, order.patient_id), "studies": studies, "study": current,
        "series": series, "presets": imaging.PRESETS, "preset_labels": imaging.PRESET_LABELS,
        "orthanc_url": imaging.orthanc_link(db, current) if current else None,
        "ordering": kit.get(db, Institution, order.ordering_institution_id), "centre": centre,
        "results": None,
    }


@router.get("/diagnostics/orders/{order_id}/images")
def viewer_page(order_id: Id, request: Request, db: DB, subject: Clinical, study: Id | None = None) -> Response:
    order = imaging.order_for(db, subject, order_id, "diagnostics.study_view")
    return render_page(request, "diagnostics/viewer.html", viewer_context(db, subject, order, study))


@router.post("/diagnostics/orders/{order_id}/images")
async def upload_page(order_id: Id, request: Request, db: DB, subject: Clinical) -> Response:
    order = imaging.order_for(db, subject, order_id, "diagnostics.dicom_upload")
    form = await request.form()
    payload = []
    for item in form.getlist("files"):
        if isinstance(item, UploadFile) and item.filename:
            payload.append((item.filename, await item.read()))
    outcome = imaging.ingest_upload(db, subject, order, payload) if payload else imaging.UploadOutcome()
    ctx = viewer_context(db, subject, order, None)
    ctx["results"] = outcome.results
    ctx["no_files"] = not payload
    status = 422 if outcome.rejected or not payload else 200
    return render_page(request, "diagnostics/viewer.html", ctx, status_code=status)


@router.get("/diagnostics/orders/{order_id}/images/key.png")
def key_image(order_id: Id, db: DB, subject: Clinical, size: int = Query(256, ge=16, le=2048)) -> Response:
    """The middle image of the order's first series, windowed by default (the report editor's thumbnail)."""
    order = imaging.order_for(db, subject, order_id, "diagnostics.image_view")
    for study in diagnostics_repo.studies_of_order(db, order.id):
        series = imaging.series_of(db, study)
        if series:
            images = series[0].images
            image = images[len(images) // 2]
            inst = imaging.instance_for(db, subject, image.instance_id, image.frame)
            try:
                png = imaging.preview_png(inst.path, image.frame, size=max(16, min(size, 1024)))
            except imaging.NotDecodable:
                break
            return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=600"})
    return Response(status_code=404)
