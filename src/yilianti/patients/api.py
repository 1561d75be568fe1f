"""Patients JSON API (member systems use API tokens; the same policy as the pages)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, status
from fastapi.responses import JSONResponse

from yilianti.auth.deps import DB, Clinical
from yilianti.authz import policy
from yilianti.exceptions import error_body
from yilianti.kit.schemas import Id, Limit, Offset
from yilianti.patients import repository, service
from yilianti.patients.schemas import (
    BreakGlassIn,
    ConsentIn,
    ConsentOut,
    PatientBrief,
    PatientOut,
    RegisteredOut,
    RegistrationIn,
)

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])


def _out(p: Any, access: policy.PatientAccess | None = None, identifiers: bool = True) -> dict[str, Any]:
    data = {k: getattr(p, k) for k in ("id", "name", "sex", "birth_date", "phone", "address", "guardian_name",
                                       "guardian_phone")}
    if identifiers:
        data["identifiers"] = [{"authority": i.authority, "value": i.value} for i in p.identifiers]
    if access:
        data["access_basis"], data["shared_record_visible"] = access.basis, access.shared
    return data


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RegisteredOut)
def register(db: DB, subject: Clinical, body: RegistrationIn = Body()) -> dict[str, Any]:
    result = service.register(db, subject, body)
    patient, access = service.get_patient(db, subject, result.patient.id)
    return {**_out(patient, access), "existing": result.existing, "link": result.link,
            "review_candidates": result.review_candidates}


@router.get("", response_model=list[PatientBrief])
def search(db: DB, subject: Clinical, q: str = "", limit: Limit = 50, offset: Offset = 0) -> list[Any]:
    return service.search(db, subject, q, min(max(limit, 1), 200), max(offset, 0))


@router.get("/{patient_id}", response_model=PatientOut,
            responses={308: {"description": "merged into another person: Location and `merged_into` name them"}})
def read(patient_id: Id, request: Request, db: DB, subject: Clinical) -> Any:
    survivor = service.merged_into(db, subject, patient_id)
    if survivor is not None:  # permanent: the old id now always means the surviving person
        body = error_body(request, "patient_merged", "该患者已合并到另一位患者")
        return JSONResponse({**body, "merged_into": survivor}, status_code=308,
                            headers={"Location": f"/api/v1/patients/{survivor}"})
    patient, access = service.get_patient(db, subject, patient_id)
    return _out(patient, access)


@router.get("/{patient_id}/consents", response_model=list[ConsentOut])
def consents(patient_id: Id, db: DB, subject: Clinical) -> list[Any]:
    policy.require_patient(db, subject, patient_id, resource_type="consent")
    return repository.consents_of(db, patient_id)


@router.post("/{patient_id}/consents", status_code=201, response_model=ConsentOut)
def grant_consent(patient_id: Id, db: DB, subject: Clinical, body: ConsentIn = Body()) -> Any:
    return service.grant_consent(db, subject, patient_id, body)


@router.post("/{patient_id}/consents/{consent_id}/withdraw", status_code=204)
def withdraw_consent(patient_id: Id, consent_id: Id, db: DB, subject: Clinical) -> None:
    service.withdraw_consent(db, subject, patient_id, consent_id)


@router.post("/break-glass", response_model=PatientOut, tags=["patients"])
def break_glass(db: DB, subject: Clinical, body: BreakGlassIn = Body()) -> dict[str, Any]:
    """Emergency access by exact identifier with a stated reason; time-limited, flagged for review."""
    grant = policy.break_glass(db, subject, body.authority, body.value, body.reason)
    patient, access = service.get_patient(db, subject, grant.patient_id)
    return _out(patient, access)
