"""Beds: wards and their reserved bed pools, bed reservations held for referred patients, admission."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from yilianti.alliance.repository import membership_in_force
from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import (
    Alliance,
    Department,
    Institution,
    MemberRole,
)
from yilianti.models.patient import GrantKind, Patient
from yilianti.models.scheduling import (
    BedReservation,
    Pool,
    Ward,
)
from yilianti.notifications.service import notify
from yilianti.scheduling import repository as repo
from yilianti.scheduling.rules import (
    BedsFull,
    _is_staff_of,
    _may_use_reserve,
    _require_scheduler,
    reserved_count,
    share_alliance,
)
from yilianti.scheduling.schemas import (
    BedReservationIn,
    WardIn,
)


def create_ward(db: Session, subject: Subject, data: WardIn) -> Ward:
    _require_scheduler(subject, data.institution_id)
    kit.get_or_422(db, Institution, data.institution_id, "institution_id", "机构不存在")
    if data.department_id is not None:
        department = kit.get_or_422(db, Department, data.department_id, "department_id", "科室不存在")
        if department.institution_id != data.institution_id:
            raise InvalidInput(fields={"department_id": "该科室不属于所选机构"})
    share = data.reserve_share
    if data.reserve_alliance_id is not None:
        m = membership_in_force(db, data.reserve_alliance_id, data.institution_id, clock.today_local())
        if m is None or m.role != MemberRole.lead:
            raise InvalidInput(fields={"reserve_alliance_id": "只有牵头医院向下级成员预留床位"})
        alliance = kit.get(db, Alliance, data.reserve_alliance_id)
        share = share if share is not None else (alliance.bed_reserve_share if alliance else 0.25)
    if data.occupied > data.beds_total:
        raise InvalidInput(fields={"occupied": "在院人数不能超过床位数"})
    if repo.ward_named(db, data.institution_id, data.name):
        raise InvalidInput(fields={"name": "病区名称已存在"})
    reserved = reserved_count(data.beds_total, share) if data.reserve_alliance_id else 0
    reserved = min(reserved, data.beds_total - data.occupied)
    ward = Ward(institution_id=data.institution_id, department_id=data.department_id, name=data.name,
                beds_total=data.beds_total, occupied=data.occupied, reserved_beds=reserved,
                reserve_alliance_id=data.reserve_alliance_id)
    db.add(ward)
    db.flush()
    audit.record(db, subject, "create", "ward", ward.id, detail=data.model_dump(mode="json"))
    return ward


def set_occupied(db: Session, subject: Subject, ward_id: int, occupied: int) -> Ward:
    ward = kit.get(db, Ward, ward_id)
    if ward is None:
        raise NotFound()
    _require_scheduler(subject, ward.institution_id)
    if occupied < 0 or occupied + ward.reserved_held + ward.public_held > ward.beds_total:
        raise InvalidInput(fields={"occupied": "在院人数加已预留床位不能超过床位数"})
    before = ward.occupied
    ward.occupied = occupied
    audit.record(db, subject, "update", "ward", ward.id, detail={"occupied": {"from": before, "to": occupied}})
    return ward


def bed_pools_for(db: Session, institution_id: int | None, ward: Ward) -> list[str]:
    if institution_id is None:
        return []
    if not share_alliance(db, institution_id, ward.institution_id):
        return []
    if _may_use_reserve(db, institution_id, ward.reserve_alliance_id, ward.institution_id):
        return [Pool.reserved, Pool.public]
    return [Pool.public]


def reserve_bed(db: Session, subject: Subject, data: BedReservationIn, *,
                pool_institution_id: int | None = None) -> BedReservation:
    """`pool_institution_id`: as in `book` (a referral's origin when the receiving site reserves)."""
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden()
    ward = kit.get(db, Ward, data.ward_id)
    if ward is None or not ward.active:
        raise NotFound("病区不存在")
    policy.require_patient(db, subject, data.patient_id, resource_type="bed_reservation_patient")
    pools = bed_pools_for(db, pool_institution_id or subject.acting_institution_id, ward)
    if not pools:
        raise Forbidden("本机构与该院不在同一医联体，不能预留床位")
    held = None
    for pool in pools:
        if repo.hold_bed(db, ward.id, pool):
            held = pool
            break
    if held is None:
        raise BedsFull()
    db.refresh(ward)
    assert subject.acting_institution_id is not None
    res = BedReservation(ward_id=ward.id, patient_id=data.patient_id, pool=held,
                         # whose reserve it uses, as a booking's booked_by (a referral's origin)
                         requested_by_institution_id=pool_institution_id or subject.acting_institution_id,
                         requested_by_user_id=subject.user_id, note=data.note, referral_id=data.referral_id,
                         expires_at=clock.now() + timedelta(hours=data.hours))
    db.add(res)
    db.flush()
    if ward.institution_id != subject.acting_institution_id:
        policy.grant_access(db, subject, patient_id=data.patient_id, institution_id=ward.institution_id,
                            kind=GrantKind.booking, reason="预留床位", source=("bed_reservation", res.id),
                            expires_in=timedelta(hours=data.hours) + timedelta(days=30))
    audit.record(db, subject, "create", "bed_reservation", res.id, patient_id=data.patient_id,
                 detail={"ward_id": ward.id, "pool": held})
    return res


def _end_reservation(db: Session, res: BedReservation, status: str) -> None:
    repo.let_bed_go(db, res.ward_id, res.pool, admitted=status == "admitted")
    res.status = status
    res.ended_at = clock.now()


def admit_reservation(db: Session, subject: Subject, reservation_id: int) -> BedReservation:
    res = kit.get(db, BedReservation, reservation_id)
    ward = kit.get(db, Ward, res.ward_id) if res else None
    if res is None or ward is None:
        raise NotFound()
    if not _is_staff_of(subject, ward.institution_id, "doctor", "nurse", "coordinator", "institution_admin"):
        raise NotFound()
    if res.status != "held":
        raise Conflict("该床位预留已结束")
    _end_reservation(db, res, "admitted")
    audit.record(db, subject, "admit", "bed_reservation", res.id, patient_id=res.patient_id)
    return res


def release_reservation(db: Session, subject: Subject, reservation_id: int) -> BedReservation:
    res = kit.get(db, BedReservation, reservation_id)
    ward = kit.get(db, Ward, res.ward_id) if res else None
    if res is None or ward is None:
        raise NotFound()
    if subject.acting_institution_id not in (ward.institution_id, res.requested_by_institution_id):
        raise NotFound()
    if res.status != "held":
        raise Conflict("该床位预留已结束")
    _end_reservation(db, res, "released")
    policy.end_grants(db, subject, "bed_reservation", res.id)
    audit.record(db, subject, "release", "bed_reservation", res.id, patient_id=res.patient_id)
    return res


def expire_reservations(db: Session, now: datetime | None = None) -> int:
    now = now or clock.now()
    expired = repo.expired_holds(db, now)
    for res in expired:
        _end_reservation(db, res, "expired")
        notify(db, title="床位预留已过期", institution_id=res.requested_by_institution_id,
               link="/scheduling/beds", kind="booking", dedupe_key=f"bed-expired-{res.id}")
        audit.record(db, None, "expire", "bed_reservation", res.id, patient_id=res.patient_id, channel="job")
    return len(expired)


def reservations_of(db: Session, subject: Subject, status: str = "held") -> list[tuple[BedReservation, Ward, Patient]]:
    return repo.reservations_of(db, subject.acting_institution_id, status)
