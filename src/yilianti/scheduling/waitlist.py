"""The wait-list: a site asks for a booking no session has room for; the hospital books it or closes it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import (
    Institution,
)
from yilianti.models.patient import GrantKind, Patient
from yilianti.models.scheduling import (
    Booking,
    BookingRequest,
)
from yilianti.notifications.service import notify
from yilianti.scheduling import repository as repo
from yilianti.scheduling.booking import book
from yilianti.scheduling.rules import share_alliance
from yilianti.scheduling.schemas import (
    BookingIn,
    WaitRequestIn,
)


def request_wait(db: Session, subject: Subject, data: WaitRequestIn) -> BookingRequest:
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden()
    policy.require_patient(db, subject, data.patient_id, resource_type="booking_request")
    assert subject.acting_institution_id is not None
    if kit.get(db, Institution, data.target_institution_id) is None:
        raise InvalidInput(fields={"target_institution_id": "机构不存在"})
    if not share_alliance(db, subject.acting_institution_id, data.target_institution_id):
        raise Forbidden("本机构与该院不在同一医联体")
    if data.earliest and data.latest and data.latest < data.earliest:
        raise InvalidInput(fields={"latest": "最晚日期早于最早日期"})
    req = BookingRequest(patient_id=data.patient_id, requested_by_user_id=subject.user_id,
                         requested_by_institution_id=subject.acting_institution_id,
                         target_institution_id=data.target_institution_id, schedule_id=data.schedule_id,
                         specialty=data.specialty, earliest=data.earliest, latest=data.latest,
                         contact_by=clock.now() + timedelta(days=data.contact_by_days), note=data.note)
    db.add(req)
    db.flush()
    policy.grant_access(db, subject, patient_id=data.patient_id, institution_id=data.target_institution_id,
                        kind=GrantKind.booking, reason="候补预约", source=("booking_request", req.id),
                        expires_in=timedelta(days=max(data.contact_by_days, 1) + 14))
    notify(db, title="新的候补预约请求", body=f"需在 {clock.fmt_local(req.contact_by)} 前联系患者",
           institution_id=data.target_institution_id, link="/scheduling/waitlist", kind="booking")
    audit.record(db, subject, "create", "booking_request", req.id, patient_id=data.patient_id)
    return req


def waitlist(db: Session, subject: Subject, *, incoming: bool = True,
             status: str = "waiting") -> list[tuple[BookingRequest, Patient]]:
    return repo.waitlist(db, subject.acting_institution_id, incoming=incoming, status=status)


def waitlist_page(db: Session, subject: Subject, lp: ListParams, *,
                  incoming: bool = True) -> kit.Page[tuple[BookingRequest, Patient]]:
    """The wait-list page: requests to the acting institution (incoming) or from it, under the list's filters."""
    return repo.waitlist_page(db, subject.acting_institution_id, lp, incoming=incoming)


def waiting_counts(db: Session, subject: Subject) -> dict[str, int]:
    """Requests still waiting on each tab of the wait-list (incoming, outgoing)."""
    return {"incoming": count_waiting(db, subject), "outgoing": count_waiting(db, subject, incoming=False)}


def count_waiting(db: Session, subject: Subject, *, incoming: bool = True) -> int:
    """Requests still waiting to be arranged (the workbench's figure: the list's total with status=waiting)."""
    return repo.count_waitlist(db, subject.acting_institution_id, incoming=incoming)


def _waiting_request(db: Session, subject: Subject, request_id: int) -> BookingRequest:
    """A wait-list request still waiting, for a user of either side (404 otherwise, 409 once handled)."""
    req = kit.get(db, BookingRequest, request_id)
    if req is None or subject.acting_institution_id not in (req.target_institution_id,
                                                            req.requested_by_institution_id):
        raise NotFound()
    if req.status != "waiting":
        raise Conflict("该候补请求已处理")
    return req


def book_from_request(db: Session, subject: Subject, request_id: int, session_id: int) -> Booking:
    req = _waiting_request(db, subject, request_id)
    booking = book(db, subject, BookingIn(session_id=session_id, patient_id=req.patient_id))
    # a coordinator at the target books from the requester's reserved pool on their behalf
    req.status, req.booking_id, req.handled_by_user_id = "booked", booking.id, subject.user_id
    notify(db, title="候补请求已预约成功", body=f"预约号 {booking.number}",
           institution_id=req.requested_by_institution_id, link=f"/bookings/{booking.id}", kind="booking")
    audit.record(db, subject, "book", "booking_request", req.id, patient_id=req.patient_id)
    return booking


def close_request(db: Session, subject: Subject, request_id: int, reason: str) -> BookingRequest:
    req = _waiting_request(db, subject, request_id)
    if not reason.strip():
        raise InvalidInput(fields={"reason": "请填写关闭原因"})
    req.status, req.closed_reason, req.handled_by_user_id = "closed", reason.strip(), subject.user_id
    policy.end_grants(db, subject, "booking_request", req.id)
    audit.record(db, subject, "close", "booking_request", req.id, patient_id=req.patient_id, reason=reason)
    return req


def overdue_requests(db: Session, now: datetime | None = None) -> int:
    """Requests past their contact-by deadline alert both sides once."""
    now = now or clock.now()
    count = 0
    for req in repo.overdue_requests(db, now):
        for inst in (req.target_institution_id, req.requested_by_institution_id):
            notify(db, title="候补预约已超过联系时限", urgent=True, institution_id=inst,
                   link="/scheduling/waitlist", kind="booking", dedupe_key=f"waitreq-overdue-{req.id}-{inst}")
        count += 1
    return count
