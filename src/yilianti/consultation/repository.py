"""Queries of the consultation domain: joint-ward rounds, and teleconsultation figures by month,
expert or member — reusable by the KPI cockpit.

`figures()` returns one `Figures` row per group:
- requested: cases requested in the period (cancelled ones included, they were asked)
- answered: cases with a signed opinion; median_answer_hours from request to the first one
- within_deadline: answered no later than the answer deadline (share = within / answered)
- closed, avoided (close-outs saying a referral was avoided), converted (to a referral)
Months are local (Asia/Shanghai). Medians are computed in Python so both databases agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from statistics import median
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from yilianti.alliance.repository import institution_names
from yilianti.kit import clock
from yilianti.models.alliance import Membership
from yilianti.models.auth import User
from yilianti.models.consultation import (
    Consultation,
    ConsultationHistory,
    ConsultationMessage,
    ConsultationOpinion,
    ConsultationOrder,
    ConsultationParticipant,
    JointWard,
    JointWardAdmission,
    JointWardMember,
    RoundRecord,
)
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import AccessGrant, Patient
from yilianti.models.workforce import PracticeSite, Practitioner

GROUPS = ("month", "expert", "member", "consulted")


@dataclass
class Figures:
    key: str
    label: str
    requested: int = 0
    answered: int = 0
    within_deadline: int = 0
    closed: int = 0
    avoided: int = 0
    converted: int = 0
    median_answer_hours: float | None = None
    _hours: list[float] = field(default_factory=list, repr=False)

    @property
    def within_deadline_share(self) -> float | None:
        return round(self.within_deadline / self.answered, 3) if self.answered else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_hours")
        data["within_deadline_share"] = self.within_deadline_share
        return data


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    tz = clock.to_local(clock.now()).tzinfo
    lo = datetime.combine(start, time(), tzinfo=tz)
    hi = datetime.combine(end + timedelta(days=1), time(), tzinfo=tz)
    return clock.as_utc(lo), clock.as_utc(hi)


def alliance_institutions(db: Session, alliance_id: int) -> list[int]:
    return list(db.scalars(select(Membership.institution_id).where(Membership.alliance_id == alliance_id)))


def cases(db: Session, start: date, end: date, *, institution_ids: Iterable[int] | None = None) -> list[Consultation]:
    """Cases requested in [start, end] (local dates), involving one of `institution_ids` on either side."""
    lo, hi = _bounds(start, end)
    q = select(Consultation).where(Consultation.created_at >= lo, Consultation.created_at < hi)
    if institution_ids is not None:
        ids = list(institution_ids)
        q = q.where(or_(Consultation.requesting_institution_id.in_(ids), Consultation.consulted_institution_id.in_(ids)))
    return list(db.scalars(q.order_by(Consultation.created_at)))


def _experts(db: Session, case_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    out: dict[int, list[tuple[int, str]]] = defaultdict(list)
    if not case_ids:
        return out
    for cid, pid, name in db.execute(
            select(ConsultationParticipant.consultation_id, Practitioner.id, Practitioner.name)
            .join(Practitioner, Practitioner.id == ConsultationParticipant.practitioner_id)
            .where(ConsultationParticipant.consultation_id.in_(case_ids),
                   ConsultationParticipant.removed_at.is_(None))):
        out[int(cid)].append((int(pid), str(name)))
    return out


def figures(db: Session, start: date, end: date, *, by: str = "month",
            institution_ids: Iterable[int] | None = None) -> list[Figures]:
    """Volumes, median answer time, share within deadline, avoided referrals and conversions per group.

    by: month | expert (each assigned expert counts the case) | member (requesting institution) |
    consulted (consulted institution).
    """
    if by not in GROUPS:
        raise ValueError(by)
    rows = cases(db, start, end, institution_ids=institution_ids)
    experts = _experts(db, [c.id for c in rows]) if by == "expert" else {}
    names = institution_names(db, {c.requesting_institution_id for c in rows} | {c.consulted_institution_id for c in rows}) \
        if by in ("member", "consulted") else {}
    groups: dict[str, Figures] = {}

    def keys_of(c: Consultation) -> list[tuple[str, str]]:
        if by == "month":
            m = clock.to_local(c.created_at).strftime("%Y-%m")
            return [(m, m)]
        if by == "expert":
            return [(str(pid), name) for pid, name in experts.get(c.id, [])] or [("-", "未分派")]
        inst = c.requesting_institution_id if by == "member" else c.consulted_institution_id
        return [(str(inst), names.get(inst, str(inst)))]

    for c in rows:
        for key, label in keys_of(c):
            g = groups.setdefault(key, Figures(key, label))
            g.requested += 1
            if c.first_answered_at is not None:
                g.answered += 1
                g._hours.append((c.first_answered_at - c.created_at).total_seconds() / 3600)
                if c.answer_due_at is not None and c.first_answered_at <= c.answer_due_at:
                    g.within_deadline += 1
            if c.status == "closed":
                g.closed += 1
                if c.avoided_referral:
                    g.avoided += 1
            if c.status == "converted":
                g.converted += 1
    for g in groups.values():
        g.median_answer_hours = round(median(g._hours), 1) if g._hours else None
    return sorted(groups.values(), key=lambda g: g.key)


def totals(rows: list[Figures]) -> dict[str, Any]:
    """Sums over groups (for month/member/consulted groupings, where each case counts once)."""
    answered = sum(r.answered for r in rows)
    within = sum(r.within_deadline for r in rows)
    return {"requested": sum(r.requested for r in rows), "answered": answered, "within_deadline": within,
            "within_deadline_share": round(within / answered, 3) if answered else None,
            "closed": sum(r.closed for r in rows), "avoided": sum(r.avoided for r in rows),
            "converted": sum(r.converted for r in rows)}


def rounds_by_admission(db: Session, admission_ids: list[int]) -> dict[int, list[RoundRecord]]:
    """Ward-round records of each joint-ward admission, oldest first (every given id is a key)."""
    out: dict[int, list[RoundRecord]] = {i: [] for i in admission_ids}
    if not admission_ids:
        return out
    for r in db.scalars(select(RoundRecord).where(RoundRecord.admission_id.in_(admission_ids))
                        .order_by(RoundRecord.at, RoundRecord.id)):
        out[r.admission_id].append(r)
    return out


# ------------------------------------------------------------------------------------- a case's parts


def participants(db: Session, consultation_id: int, *, active: bool = True) -> list[ConsultationParticipant]:
    """The case's experts (still assigned, unless `active` is False), in the order they were added."""
    q = select(ConsultationParticipant).where(ConsultationParticipant.consultation_id == consultation_id)
    if active:
        q = q.where(ConsultationParticipant.removed_at.is_(None))
    return list(db.scalars(q.order_by(ConsultationParticipant.id)))


def participation_of(db: Session, consultation_id: int, user_id: int | None,
                     practitioner_id: int | None) -> ConsultationParticipant | None:
    """The user's (or their practitioner's) current assignment to the case."""
    return db.scalar(select(ConsultationParticipant).where(
        ConsultationParticipant.consultation_id == consultation_id, ConsultationParticipant.removed_at.is_(None),
        or_(ConsultationParticipant.user_id == user_id,
            and_(ConsultationParticipant.practitioner_id == practitioner_id,
                 ConsultationParticipant.practitioner_id.is_not(None)))).limit(1))


def history(db: Session, consultation_id: int) -> list[ConsultationHistory]:
    """The case's status changes, oldest first (no access check: `service.history` makes it)."""
    return list(db.scalars(select(ConsultationHistory).where(ConsultationHistory.consultation_id == consultation_id)
                           .order_by(ConsultationHistory.at, ConsultationHistory.id)))


def opinions(db: Session, consultation_id: int) -> list[ConsultationOpinion]:
    """The case's signed opinions, oldest first."""
    return list(db.scalars(select(ConsultationOpinion).where(ConsultationOpinion.consultation_id == consultation_id)
                           .order_by(ConsultationOpinion.signed_at, ConsultationOpinion.id)))


def messages(db: Session, consultation_id: int) -> list[ConsultationMessage]:
    """The case's messages, oldest first."""
    return list(db.scalars(select(ConsultationMessage).where(ConsultationMessage.consultation_id == consultation_id)
                           .order_by(ConsultationMessage.at, ConsultationMessage.id)))


def orders(db: Session, consultation_id: int) -> list[tuple[ConsultationOrder, DiagnosticOrder]]:
    """The diagnostic orders linked to the case, with their links, in the order they were linked."""
    return [(co, o) for co, o in db.execute(
        select(ConsultationOrder, DiagnosticOrder).join(DiagnosticOrder, DiagnosticOrder.id == ConsultationOrder.order_id)
        .where(ConsultationOrder.consultation_id == consultation_id).order_by(ConsultationOrder.id))]


def order_link(db: Session, consultation_id: int, order_id: int) -> ConsultationOrder | None:
    return db.scalar(select(ConsultationOrder).where(ConsultationOrder.consultation_id == consultation_id,
                                                     ConsultationOrder.order_id == order_id))


def patient_orders(db: Session, patient_id: int, limit: int = 50) -> list[DiagnosticOrder]:
    """The patient's diagnostic orders a requester may attach (newest first)."""
    return list(db.scalars(select(DiagnosticOrder).where(DiagnosticOrder.patient_id == patient_id)
                           .order_by(DiagnosticOrder.id.desc()).limit(limit)))


# ------------------------------------------------------------------------------------- experts


def practises_at(db: Session, practitioner_id: int, institution_id: int) -> bool:
    """Whether the practitioner has a practice site (多点执业) at the institution."""
    return db.scalar(select(PracticeSite.id).where(PracticeSite.practitioner_id == practitioner_id,
                                                   PracticeSite.institution_id == institution_id).limit(1)) is not None


def practitioners_at(db: Session, institution_id: int, department_id: int | None = None) -> list[Practitioner]:
    """Active practitioners whose home or practice site is the institution (of one department), by name."""
    q = select(Practitioner).where(Practitioner.active.is_(True), or_(
        Practitioner.home_institution_id == institution_id,
        exists().where(PracticeSite.practitioner_id == Practitioner.id, PracticeSite.institution_id == institution_id)))
    if department_id is not None:
        q = q.where(Practitioner.department_id == department_id)
    return list(db.scalars(q.order_by(Practitioner.name)))


def active_user_of(db: Session, practitioner_id: int) -> int | None:
    """The practitioner's (first) active account."""
    return db.scalar(select(User.id).where(User.practitioner_id == practitioner_id, User.active.is_(True))
                     .order_by(User.id).limit(1))


def open_grants_of_case(db: Session, source: str, consultation_id: int, user_id: int | None) -> list[AccessGrant]:
    """The user's access grants from the case not yet revoked."""
    return list(db.scalars(select(AccessGrant).where(
        AccessGrant.source_type == source, AccessGrant.source_id == consultation_id, AccessGrant.revoked_at.is_(None),
        AccessGrant.user_id == user_id)))


# ------------------------------------------------------------------------------------- worklists


def worklist_statement(inst: int | None, requester: bool, expert_user_id: int | None, expert_practitioner_id: int | None,
                       only_experts: bool, bucket: str, kind: str | None, now: datetime,
                       final: Iterable[str], requested: str, answered: str) -> Select[Any]:
    """Cases of the institution on one side (requesting, or consulted — an expert's own only when
    `only_experts`), cut by worklist bucket (`to_close`: answered, waiting for the requester's close-out)
    and kind."""
    final = tuple(final)
    if requester:
        q = select(Consultation).where(Consultation.requesting_institution_id == inst)
    else:
        q = select(Consultation).where(Consultation.consulted_institution_id == inst)
        if only_experts:  # an expert sees the cases assigned to them
            q = q.where(exists().where(
                ConsultationParticipant.consultation_id == Consultation.id,
                ConsultationParticipant.removed_at.is_(None),
                or_(ConsultationParticipant.user_id == expert_user_id,
                    and_(ConsultationParticipant.practitioner_id == expert_practitioner_id,
                         ConsultationParticipant.practitioner_id.is_not(None)))))
    mine = exists().where(ConsultationParticipant.consultation_id == Consultation.id,
                          ConsultationParticipant.removed_at.is_(None),
                          ConsultationParticipant.user_id == expert_user_id)
    by_bucket = {
        "open": Consultation.status.not_in(final),
        "to_assign": Consultation.status == requested,
        "mine": and_(mine, Consultation.status.not_in(final)),
        "overdue": and_(Consultation.due_at < now, Consultation.status.not_in(final)),
        "to_close": Consultation.status == answered,
        "done": Consultation.status.in_(final),
    }
    if bucket in by_bucket:
        q = q.where(by_bucket[bucket])
    if kind:
        q = q.where(Consultation.kind == kind)
    return q


def worklist_rows(db: Session, stmt: Select[Any], done: bool, limit: int | None = None) -> list[Consultation]:
    """The worklist in its order: the finished by last change, newest first; the others by due time."""
    order = (Consultation.updated_at.desc(),) if done else (Consultation.due_at.asc(), Consultation.id)
    return list(db.scalars(stmt.order_by(*order).limit(limit)))


def count_rows(db: Session, stmt: Select[Any]) -> int:
    return db.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def overdue_cases(db: Session, now: datetime, final: Iterable[str], limit: int = 1000) -> list[Consultation]:
    """Unfinished cases past their step's deadline, the longest overdue first."""
    return list(db.scalars(select(Consultation).where(Consultation.due_at < now,
                                                      Consultation.status.not_in(tuple(final)))
                           .order_by(Consultation.due_at).limit(limit)))


# ------------------------------------------------------------------------------------- joint wards


def wards_of(db: Session, institution_id: int) -> list[JointWard]:
    """Joint wards the institution hosts or leads, oldest first."""
    return list(db.scalars(select(JointWard).where(
        or_(JointWard.institution_id == institution_id, JointWard.lead_institution_id == institution_id))
        .order_by(JointWard.id)))


def ward_member(db: Session, ward_id: int, practitioner_id: int, *, current: bool = False) -> JointWardMember | None:
    """The practitioner's membership of the ward's team (only one not left, with `current`)."""
    q = select(JointWardMember).where(JointWardMember.joint_ward_id == ward_id,
                                      JointWardMember.practitioner_id == practitioner_id)
    if current:
        q = q.where(JointWardMember.left_on.is_(None))
    return db.scalar(q)


def ward_members(db: Session, ward_id: int) -> list[tuple[JointWardMember, Practitioner]]:
    """The ward's current team members with their practitioners, by team and name."""
    return [(m, p) for m, p in db.execute(
        select(JointWardMember, Practitioner).join(Practitioner, Practitioner.id == JointWardMember.practitioner_id)
        .where(JointWardMember.joint_ward_id == ward_id, JointWardMember.left_on.is_(None))
        .order_by(JointWardMember.team, Practitioner.name))]


def current_admission_id(db: Session, ward_id: int, patient_id: int) -> int | None:
    """The patient's admission to the ward not yet discharged, if any."""
    return db.scalar(select(JointWardAdmission.id).where(JointWardAdmission.joint_ward_id == ward_id,
                                                         JointWardAdmission.patient_id == patient_id,
                                                         JointWardAdmission.discharged_at.is_(None)))


def ward_admissions(db: Session, ward_id: int, *, current: bool = True) -> list[tuple[JointWardAdmission, Patient]]:
    """The ward's admissions (those not discharged, with `current`) with their patients, by bed."""
    q = select(JointWardAdmission, Patient).join(Patient, Patient.id == JointWardAdmission.patient_id).where(
        JointWardAdmission.joint_ward_id == ward_id)
    if current:
        q = q.where(JointWardAdmission.discharged_at.is_(None))
    return [(a, p) for a, p in db.execute(q.order_by(JointWardAdmission.bed_no, JointWardAdmission.id))]


def rounds_of(db: Session, admission_id: int) -> list[RoundRecord]:
    """An admission's rounds records, oldest first."""
    return list(db.scalars(select(RoundRecord).where(RoundRecord.admission_id == admission_id)
                           .order_by(RoundRecord.at, RoundRecord.id)))
