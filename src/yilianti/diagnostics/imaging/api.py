"""Imaging JSON/binary API: DICOM upload to an order, study series, frames for the viewer, PNG previews.

Frames: `GET /api/v1/diagnostics/instances/{id}/frames/{n}` answers `application/octet-stream`:
uint32 LE header length, ASCII JSON header, then the pixels (see diagnostics/imaging/service.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from yilianti.auth.deps import DB, Clinical
from yilianti.diagnostics import repository as diagnostics_repo
from yilianti.diagnostics.imaging import service as imaging
from yilianti.exceptions import error_body
from yilianti.kit.schemas import INT_MAX, Id

FrameNo = Annotated[int, Path(ge=0, le=INT_MAX, description="0-based frame of a multi-frame instance")]

router = APIRouter(prefix="/api/v1/diagnostics", tags=["diagnostics imaging"])
REJECTED = "部分文件不是有效的 DICOM 文件，已拒收并放入待处理列表；已保存 {stored} 个，待匹配 {quarantined} 个"


def upload_response(request: Request, outcome: imaging.UploadOutcome) -> JSONResponse:
    """200 with each file's result when every file was stored or quarantined; otherwise 422 in the contract's
    body, naming the rejected files in `fields` and counting the others in the message.

    Rejected files are kept in quarantine either way, and the others stored (the response is returned, not
    raised, so the unit of work commits them).
    """
    counts = outcome.counts()
    if outcome.rejected:
        body = error_body(request, "dicom_rejected", REJECTED, {r.filename: r.reason or "" for r in outcome.rejected},
                          {"stored": counts["stored"], "quarantined": counts["quarantined"]})
        return JSONResponse(body, status_code=422)
    return JSONResponse({"results": [r.as_dict() for r in outcome.results], "counts": counts})


@router.post("/orders/{order_id}/dicom")
async def upload_dicom(order_id: Id, request: Request, db: DB, subject: Clinical,
                       files: list[UploadFile] = File(...)) -> JSONResponse:
    order = imaging.order_for(db, subject, order_id, "diagnostics.dicom_upload")
    payload = [(f.filename or "upload", await f.read()) for f in files]
    return upload_response(request, imaging.ingest_upload(db, subject, order, payload))


@router.get("/orders/{order_id}/studies")
def order_studies(order_id: Id, db: DB, subject: Clinical) -> list[dict[str, Any]]:
    order = imaging.order_for(db, subject, order_id, "diagnostics.study_view")
    return [{"id": s.id, "study_instance_uid": s.study_instance_uid, "modality": s.modality,
             "description": s.description, "instance_count": s.instance_count,
             "series": imaging.series_json(imaging.series_of(db, s))}
            for s in diagnostics_repo.studies_of_order(db, order.id)]


@router.get("/studies/{study_id}")
def study(study_id: Id, db: DB, subject: Clinical) -> dict[str, Any]:
    s = imaging.study_for(db, subject, study_id)
    return {"id": s.id, "order_id": s.order_id, "study_instance_uid": s.study_instance_uid,
            "modality": s.modality, "description": s.description, "instance_count": s.instance_count,
            "orthanc_url": imaging.orthanc_link(db, s), "series": imaging.series_json(imaging.series_of(db, s))}


@router.get("/instances/{instance_id}/frames/{frame_no}")
def frame(instance_id: Id, frame_no: FrameNo, db: DB, subject: Clinical) -> Response:
    inst = imaging.instance_for(db, subject, instance_id, frame_no)
    header, data = imaging.frame(inst.path, frame_no)
    return Response(imaging.pack(header, data), media_type="application/octet-stream",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/instances/{instance_id}/frames/{frame_no}/preview.png")
def preview(instance_id: Id, frame_no: FrameNo, db: DB, subject: Clinical,
            wc: float | None = Query(None), ww: float | None = Query(None, gt=0),
            size: int | None = Query(None, ge=16, le=2048)) -> Response:
    inst = imaging.instance_for(db, subject, instance_id, frame_no)
    return Response(imaging.preview_png(inst.path, frame_no, wc, ww, size), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})
