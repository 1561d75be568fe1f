"""Shared longitudinal record page and the "who looked at this record" report."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from yilianti.auth.deps import DB, Clinical, CurrentSubject
from yilianti.kit.schemas import Id
from yilianti.record import service
from yilianti.record.sources import SOURCES
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
