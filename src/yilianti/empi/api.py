"""EMPI review queue and merges, JSON (stewards: system, alliance and institution administrators)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.empi import service
from yilianti.empi.schemas import (
    CandidateOut,
    DecisionIn,
    MergeOut,
    UnmergeIn,
)
from yilianti.kit.schemas import Id, Limit, Offset
from yilianti.models.empi import MergeEvent, PatientRecord
from yilianti.web.render import mask_id, mask_phone

router = APIRouter(prefix="/api/v1/empi", tags=["empi"])


def record_out(r: PatientRecord, institution: str) -> dict[str, Any]:
    return {"record_id": r.id, "patient_id": r.patient_id, "institution_id": r.institution_id,
            "institution": institution, "name": r.name, "sex": r.sex, "birth_date": r.birth_date,
            "phone": mask_phone(r.phone) or None, "address": r.address, "resident_id": mask_id(r.rid) or None,
            "registered_at": r.created_at}


def candidate_out(v: service.CandidateView) -> dict[str, Any]:
    c = v.candidate
    return {"id": c.id, "status": c.status, "score": c.score, "rules_version": c.rules_version,
            "explanation": c.explanation, "created_at": c.created_at, "decided_at": c.decided_at,
            "decision_note": c.decision_note, "merge_event_id": c.merge_event_id,
            "record": record_out(v.record, v.institution), "other": record_out(v.other, v.other_institution)}


def merge_out(e: MergeEvent) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "survivor_id": e.survivor_id, "merged_id": e.merged_id, "at": e.at,
            "undone_at": e.undone_at, "reason": e.reason, "moved": {k: len(v) for k, v in e.moved.items()}}


@router.get("/candidates", response_model=list[CandidateOut])
def candidates(db: DB, subject: CurrentSubject, status: str = "open", limit: Limit = 50,
               offset: Offset = 0) -> list[dict[str, Any]]:
    """Pairs of records in the review band, with the per-field weights and the score."""
    return [candidate_out(v) for v in service.candidates(db, subject, status, min(max(limit, 1), 200),
                                                         max(offset, 0))]


@router.get("/candidates/{candidate_id}", response_model=CandidateOut)
def candidate(candidate_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    return candidate_out(service.get_candidate(db, subject, candidate_id))


@router.post("/candidates/{candidate_id}/confirm", response_model=CandidateOut)
def confirm(candidate_id: Id, db: DB, subject: CurrentSubject, body: DecisionIn = Body()) -> dict[str, Any]:
    """Same person: merge (audited, reversible with unmerge)."""
    service.confirm(db, subject, candidate_id, body.note)
    return candidate_out(service.get_candidate(db, subject, candidate_id, audit_read=False))


@router.post("/candidates/{candidate_id}/reject", response_model=CandidateOut)
def reject(candidate_id: Id, db: DB, subject: CurrentSubject, body: DecisionIn = Body()) -> dict[str, Any]:
    """Different persons: the pair goes on the do-not-match list."""
    service.reject(db, subject, candidate_id, body.note)
    return candidate_out(service.get_candidate(db, subject, candidate_id, audit_read=False))


@router.get("/merges", response_model=list[MergeOut])
def merges(db: DB, subject: CurrentSubject, limit: Limit = 50) -> list[dict[str, Any]]:
    return [merge_out(e) for e, _, _ in service.merges(db, subject, min(max(limit, 1), 200))]


@router.post("/merges/{event_id}/unmerge", response_model=MergeOut)
def unmerge(event_id: Id, db: DB, subject: CurrentSubject, body: UnmergeIn = Body()) -> dict[str, Any]:
    return merge_out(service.unmerge(db, subject, event_id, body.reason))
