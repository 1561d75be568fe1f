"""Referral JSON API: create+submit, worklists, detail with history, transitions, follow-up tasks.

Every move goes through the service functions (and so through `service.transition`):
409 `referral_state_conflict` when the move does not fit the current status (or a stale
`expected_status`), 404 for an institution on neither side, 403 for the wrong side.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, File, Query, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from yilianti.auth.deps import DB, Clinical
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.kit import repository as kit
from yilianti.kit.schemas import Id
from yilianti.referral import flows, routing, service
from yilianti.referral.schemas import (
    AttachmentOut,
    BookSlotIn,
    CandidateOut,
    HistoryOut,
    ReferralDetail,
    ReferralIn,
    ReferralOut,
    ReserveBedIn,
    RoutingOut,
    TaskOut,
    TransitionIn,
    WardOptionOut,
)
from yilianti.referral.states import Side

router = APIRouter(prefix="/api/v1", tags=["referrals"])


def _detail(db: Session, subject: Subject, referral_id: Id) -> dict[str, Any]:
    from yilianti.referral import states

    ref, side = service.get(db, subject, referral_id)
    data = ReferralOut.model_validate(ref, from_attributes=True).model_dump()
    data["side"] = side.value
    data["next_moves"] = [m.value for m in states.moves_for(ref.status, ref.direction, side)]
    data["history"] = [HistoryOut.model_validate(h, from_attributes=True)
                       for h in service.history(db, subject, referral_id)]
    return data


# ------------------------------------------------------------------------------------- routes


@router.post("/referrals", status_code=201, response_model=ReferralDetail)
def create(db: DB, subject: Clinical, body: ReferralIn = Body()) -> dict[str, Any]:
    """Create and submit an up- or down-referral from the acting institution."""
    ref = service.draft_and_submit(db, subject, body)
    return _detail(db, subject, ref.id)


@router.get("/referrals", response_model=list[ReferralOut])
def worklist(db: DB, subject: Clinical, side: Side = Side.sender,
             bucket: Literal["to_triage", "awaiting_booking", "awaiting_arrival", "awaiting_outcome", "overdue",
                             "closed", "drafts", "all"] = "all",
             direction: Literal["up", "down"] | None = None,
             priority: Literal["routine", "urgent", "emergency"] | None = None,
             patient_id: Id | None = None, limit: int = Query(200, ge=1, le=500)) -> list[Any]:
    return service.worklist(db, subject, service.WorklistFilter(side, bucket, direction, priority, patient_id), limit)


@router.get("/referrals/{referral_id}", response_model=ReferralDetail)
def read(referral_id: Id, db: DB, subject: Clinical) -> dict[str, Any]:
    return _detail(db, subject, referral_id)


@router.post("/referrals/{referral_id}/transition", response_model=ReferralDetail)
def transition(referral_id: Id, db: DB, subject: Clinical, body: TransitionIn = Body()) -> dict[str, Any]:
    """Make one move. `expected_status` must equal the current status (optimistic check)."""
    moved = service.apply_move(db, subject, referral_id, body.to_status, expected_status=body.expected_status,
                       reason=body.reason, reject_code=body.reject_code, booking_id=body.booking_id,
                       bed_reservation_id=body.bed_reservation_id, to_institution_id=body.to_institution_id,
                       arrival_mode=body.arrival_mode)
    # hold the moved referral while the detail is read: the session's identity map is weak, and
    # without this reference the detail would SELECT the referral again (B4: one round trip per move)
    detail = _detail(db, subject, referral_id)
    del moved
    return detail


@router.get("/follow-up-tasks", response_model=list[TaskOut], tags=["referrals"])
def tasks(db: DB, subject: Clinical, status: Literal["open", "done"] | None = "open") -> list[Any]:
    return service.follow_up_tasks(db, subject, status)


@router.post("/follow-up-tasks/{task_id}/done", response_model=TaskOut, tags=["referrals"])
def task_done(task_id: Id, db: DB, subject: Clinical) -> Any:
    return service.complete_task(db, subject, task_id)


# ------------------------------------------------------------------------------------- routing help


def _candidate_out(c: routing.Candidate) -> CandidateOut:
    return CandidateOut(
        institution_id=c.institution.id, name=c.institution.name, level=c.institution.level, kind=c.institution.kind,
        same_area=c.same_area, free_reserved_slots=c.free_reserved_slots, free_reserved_beds=c.free_reserved_beds,
        sessions=c.sessions, wards=[WardOptionOut(**vars(w)) for w in c.wards])


@router.get("/referral-routing", response_model=RoutingOut)
def routing_help(db: DB, subject: Clinical, specialty: str = Query("", max_length=64),
                 direction: Literal["up", "down"] = "up", patient_id: Id | None = None,
                 days: int | None = Query(None, ge=1, le=60)) -> RoutingOut:
    """Candidate institutions of the acting institution's alliances for a specialty, with the free
    reserved slots (next `days` days) and beds it may use."""
    from yilianti.authz import policy
    from yilianti.models.patient import Patient

    patient = None
    if patient_id is not None:
        policy.require_patient(db, subject, patient_id, action="read", resource_type="referral_routing")
        patient = kit.get(db, Patient, patient_id)
    assert subject.acting_institution_id is not None
    days = days or get_settings().referral_routing_days
    found = routing.candidates(db, subject.acting_institution_id, specialty, direction, patient, days)
    return RoutingOut(specialty=specialty.strip() or None, days=days, candidates=[_candidate_out(c) for c in found])


@router.get("/referrals/{referral_id}/routing", response_model=RoutingOut)
def referral_routing(referral_id: Id, db: DB, subject: Clinical,
                     days: int | None = Query(None, ge=1, le=60)) -> RoutingOut:
    """For one referral: the alliance's candidates for its specialty, and the sessions and wards of
    its receiving institution with the free slots/beds of the reserve for the referral's origin."""
    from yilianti.models.patient import Patient

    ref, _ = service.get(db, subject, referral_id)
    days = days or get_settings().referral_routing_days
    spec = routing.referral_specialty(db, ref.to_department_id)
    found = routing.candidates(db, ref.from_institution_id, spec, ref.direction, kit.get(db, Patient, ref.patient_id), days)
    sessions = routing.session_options(db, ref.from_institution_id, [ref.to_institution_id], spec, days)
    wards = routing.ward_options(db, ref.from_institution_id, [ref.to_institution_id], spec)
    return RoutingOut(specialty=spec, days=days, candidates=[_candidate_out(c) for c in found],
                      sessions=sessions,
                      wards=[WardOptionOut(**vars(w)) for w in wards])


@router.post("/referrals/{referral_id}/book-slot", response_model=ReferralDetail)
def book_slot(referral_id: Id, db: DB, subject: Clinical, body: BookSlotIn = Body()) -> dict[str, Any]:
    """Book a slot of the receiving institution and move the referral to scheduled (one transaction).
    409 `referral_slot_taken` when the slot went meanwhile; the referral is then unchanged."""
    flows.book_slot(db, subject, referral_id, body.session_id, slot_id=body.slot_id, pool=body.pool,
                    expected_status=body.expected_status)
    return _detail(db, subject, referral_id)


@router.post("/referrals/{referral_id}/reserve-bed", response_model=ReferralDetail)
def reserve_bed(referral_id: Id, db: DB, subject: Clinical, body: ReserveBedIn = Body()) -> dict[str, Any]:
    """Reserve a bed of the receiving institution and move the referral to scheduled (one transaction)."""
    flows.reserve_bed(db, subject, referral_id, body.ward_id, hours=body.hours, expected_status=body.expected_status)
    return _detail(db, subject, referral_id)


# ------------------------------------------------------------------------------------- attachments


async def read_upload(file: UploadFile) -> bytes:
    """At most one byte more than the limit is read, so an oversized upload is refused cheaply."""
    return await file.read(get_settings().attachment_max_bytes + 1)


@router.get("/referrals/{referral_id}/attachments", response_model=list[AttachmentOut])
def attachment_list(referral_id: Id, db: DB, subject: Clinical) -> list[Any]:
    return service.attachments_of(db, subject, referral_id)


@router.post("/referrals/{referral_id}/attachments", status_code=201, response_model=AttachmentOut)
async def attachment_upload(referral_id: Id, db: DB, subject: Clinical, file: UploadFile = File()) -> Any:
    """PDF, JPEG, PNG or DICOM (recognised by content, not by the declared type); 413 too large,
    415 other types, 422 empty; nothing is stored then."""
    data = await read_upload(file)
    return service.attach(db, subject, referral_id, file.filename, file.content_type, data)


@router.get("/referrals/{referral_id}/attachments/{attachment_id}")
def attachment_download(referral_id: Id, attachment_id: Id, db: DB, subject: Clinical) -> Response:
    """The file itself; the read is audited. 404 when the patient is not visible to the institution."""
    got = service.open_attachment(db, subject, referral_id, attachment_id)
    return Response(got.data, media_type=got.attachment.content_type,
                    headers={"Content-Disposition": got.content_disposition, "X-Content-Type-Options": "nosniff"})


@router.delete("/referrals/{referral_id}/attachments/{attachment_id}", status_code=204)
def attachment_delete(referral_id: Id, attachment_id: Id, db: DB, subject: Clinical) -> Response:
    service.delete_attachment(db, subject, referral_id, attachment_id)
    return Response(status_code=204)
