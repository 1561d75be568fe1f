"""Shared longitudinal record and access report, JSON (member systems use API tokens)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from yilianti.auth.deps import DB, Clinical, CurrentSubject
from yilianti.kit.schemas import Id, Limit, Offset
from yilianti.record import service
from yilianti.record.schemas import (
    AccessLogOut,
    RecordOut,
)

router = APIRouter(prefix="/api/v1/patients", tags=["record"])


@router.get("/{patient_id}/record", response_model=RecordOut)
def record(patient_id: Id, db: DB, subject: Clinical, kind: list[str] | None = Query(default=None),
           limit: Limit = 200) -> dict[str, Any]:
    """Every member's entries for the patient, newest first; other members' only with consent in force."""
    kinds = service.parse_kinds([k for part in (kind or []) for k in part.split(",")])
    view = service.shared_record(db, subject, patient_id, kinds, min(max(limit, 1), 500))
    return {"patient_id": patient_id, "access_basis": view.access.basis,
            "shared_record_visible": view.access.shared, "kinds": view.kinds,
            "hidden_other_members": view.hidden_other_members,
            "entries": [service.entry_out(e, view.institutions) for e in view.entries]}


@router.get("/{patient_id}/access-log", response_model=list[AccessLogOut])
def access_log(patient_id: Id, db: DB, subject: CurrentSubject, all_actions: bool = False, limit: Limit = 200,
               offset: Offset = 0) -> list[dict[str, Any]]:
    """Who looked at this patient's record (care institutions and auditors)."""
    _, rows = service.access_log(db, subject, patient_id, not all_actions, min(max(limit, 1), 500), max(offset, 0))
    return [{"at": r.event.at, "institution_id": r.event.acting_institution_id, "institution": r.institution,
             "user": r.user, "action": r.event.action, "resource_type": r.event.resource_type,
             "basis": r.event.access_basis, "reason": r.event.reason, "channel": r.event.channel} for r in rows]
