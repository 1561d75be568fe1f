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

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from yilianti.kit import clock
from yilianti.models.alliance import Institution, Membership
from yilianti.models.consultation import Consultation, ConsultationParticipant, RoundRecord
from yilianti.models.workforce import Practitioner

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


def _names(db: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {int(i): str(n) for i, n in db.execute(select(Institution.id, Institution.name).where(Institution.id.in_(ids)))}


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
    names = _names(db, {c.requesting_institution_id for c in rows} | {c.consulted_institution_id for c in rows}) \
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
