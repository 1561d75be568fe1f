"""ECG JSON API: import a waveform to an order, read it back (with samples), save the reader's measurements."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse

from yilianti.auth.deps import DB, Clinical
from yilianti.diagnostics import repository
from yilianti.diagnostics.ecg import service as ecg
from yilianti.diagnostics.imaging import service as imaging
from yilianti.diagnostics.schemas import (
    ReadingIn,
)
from yilianti.kit.schemas import Id

router = APIRouter(prefix="/api/v1/diagnostics", tags=["diagnostics ECG"])


@router.post("/orders/{order_id}/ecg", status_code=201)
async def import_ecg(order_id: Id, db: DB, subject: Clinical, file: UploadFile = File(...),
                     sample_rate_hz: float | None = Form(None)) -> JSONResponse:
    """DICOM 12-lead waveform, CSV or JSON export (docs/ecg-import.md); 422 and nothing stored on bad input."""
    order = imaging.order_for(db, subject, order_id, "diagnostics.ecg_import")
    source, wf = ecg.parse_upload(file.filename or "ecg", await file.read(), sample_rate_hz)
    rec = ecg.store(db, subject, order, wf, source, filename=file.filename)
    return JSONResponse(ecg.summary(rec), status_code=201)


@router.get("/orders/{order_id}/ecg")
def order_ecgs(order_id: Id, db: DB, subject: Clinical) -> list[dict[str, Any]]:
    order = imaging.order_for(db, subject, order_id, "diagnostics.ecg_view")
    ecg.import_received(db, order)
    return [ecg.summary(r) for r in repository.ecg_recordings_of(db, order.id)]


@router.get("/ecg/{rec_id}")
def get_ecg(rec_id: Id, db: DB, subject: Clinical, samples: bool = False) -> dict[str, Any]:
    rec, _ = ecg.recording_for(db, subject, rec_id, "diagnostics.ecg_view")
    out = ecg.summary(rec)
    if samples:
        wf = ecg.waveform_of(rec)
        out["samples_uv"] = {name: [int(v) for v in wf.leads[name]] for name in rec.leads}
    return out


@router.put("/ecg/{rec_id}/reading")
def put_reading(rec_id: Id, body: ReadingIn, db: DB, subject: Clinical) -> dict[str, Any]:
    rec, order = ecg.recording_for(db, subject, rec_id, "diagnostics.ecg_view")
    values: dict[str, str | int | None] = {k: getattr(body, k) for k in ecg.MEASURE_LIMITS}
    ecg.save_reading(db, subject, rec, order, values, body.conclusion, body.rhythm)
    return ecg.summary(rec)
