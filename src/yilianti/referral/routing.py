"""Routing help (DOMAIN.md §3–4): where in the alliance can this patient be seen for this specialty?

For the referring institution (the referral's origin) and a requested specialty, the
alliance's candidate member institutions with

- the free RESERVED slots the origin may use in the next N days (sessions whose schedule,
  department or specialty matches; the reserve must be for an alliance where the origin
  may use it and not yet released at the cut-off), and
- the free reserved beds of wards of that specialty,

sorted for the direction: up-referrals by level of care (then free capacity); down-referrals
by the patient's home area (same county, then city) when known, then grassroots first.
Only institutions sharing a current alliance with the origin are candidates; pools of
other alliances never count. Read-only: booking is in `flows.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from yilianti.config import get_settings
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import Department, Institution, MemberRole
from yilianti.models.patient import Patient
from yilianti.referral import repository
from yilianti.referral.schemas import SessionOptionOut


@dataclass
class WardOption:
    ward_id: int
    institution_id: int
    name: str
    department: str | None
    free_reserved: int
    free_public: int


@dataclass
class Candidate:
    institution: Institution
    free_reserved_slots: int = 0
    free_reserved_beds: int = 0
    same_area: str | None = None  # "county" | "city" | None
    sessions: list[SessionOptionOut] = field(default_factory=list)
    wards: list[WardOption] = field(default_factory=list)


def origin_alliances(db: Session, origin_id: int) -> tuple[list[int], list[int]]:
    """(alliances the origin is in, those whose reserve the origin may use)."""
    origin = kit.get(db, Institution, origin_id)
    rows = repository.current_alliance_roles(db, origin_id)
    grassroots = bool(origin and origin.is_grassroots)
    all_ids = sorted({r[0] for r in rows})
    reserve_ids = sorted({r[0] for r in rows if r[1] != MemberRole.lead and (r[2] == "members" or grassroots)})
    return all_ids, reserve_ids


def session_options(db: Session, origin_id: int, institution_ids: list[int], specialty: str | None,
                    days: int | None = None, reserve_alliances: list[int] | None = None) -> list[SessionOptionOut]:
    """Bookable sessions (not started, open) at these sites in the next `days` days, with the free
    reserved slots the origin may use and the free public slots."""
    if not institution_ids:
        return []
    days = days or get_settings().referral_routing_days
    if reserve_alliances is None:
        reserve_alliances = origin_alliances(db, origin_id)[1]
    now = clock.now()
    start = clock.today_local()
    return [SessionOptionOut(session_id=r[0], institution_id=r[1], schedule_name=r[2], department=r[3],
                             specialty=r[4], starts_at=r[5], ends_at=r[6], free_reserved=int(r[7] or 0),
                             free_public=int(r[8] or 0))
            for r in repository.session_option_rows(db, origin_id, institution_ids, specialty, start, days, now,
                                                    reserve_alliances)]


def ward_options(db: Session, origin_id: int, institution_ids: list[int], specialty: str | None,
                 reserve_alliances: list[int] | None = None) -> list[WardOption]:
    if not institution_ids:
        return []
    if reserve_alliances is None:
        reserve_alliances = origin_alliances(db, origin_id)[1]
    out = []
    for ward, dept in repository.wards_at(db, institution_ids, specialty):
        empty = ward.beds_total - ward.occupied - ward.reserved_held - ward.public_held
        usable = (ward.reserve_alliance_id in reserve_alliances and ward.institution_id != origin_id)
        free_reserved = max(0, min(ward.reserved_beds - ward.reserved_held, empty)) if usable else 0
        free_public = max(0, ward.beds_total - ward.occupied - ward.public_held - ward.reserved_beds)
        out.append(WardOption(ward.id, ward.institution_id, ward.name, dept, free_reserved, free_public))
    return out


def candidates(db: Session, origin_id: int, specialty: str | None, direction: str = "up",
               patient: Patient | None = None, days: int | None = None) -> list[Candidate]:
    specialty = (specialty or "").strip() or None
    all_alliances, reserve_alliances = origin_alliances(db, origin_id)
    if not all_alliances:
        return []
    insts = repository.partner_candidates(db, all_alliances, origin_id)
    by_id = {i.id: Candidate(i) for i in insts}
    ids = list(by_id)
    for s in session_options(db, origin_id, ids, specialty, days, reserve_alliances):
        c = by_id[s.institution_id]
        c.sessions.append(s)
        c.free_reserved_slots += s.free_reserved
    for w in ward_options(db, origin_id, ids, specialty, reserve_alliances):
        c = by_id[w.institution_id]
        c.wards.append(w)
        c.free_reserved_beds += w.free_reserved
    if specialty:
        # institutions with the specialty: a matching department, session or ward
        with_dept = repository.with_department_of(db, ids, specialty)
        keep = [c for c in by_id.values() if c.sessions or c.wards or c.institution.id in with_dept]
    else:
        keep = list(by_id.values())
    origin = kit.get(db, Institution, origin_id)
    origin_level = (origin.level if origin else None) or 0
    for c in keep:
        if patient is not None and patient.county and c.institution.county == patient.county:
            c.same_area = "county"
        elif patient is not None and patient.city and c.institution.city == patient.city:
            c.same_area = "city"
    if direction == "down":
        keep = [c for c in keep if c.institution.is_grassroots or (c.institution.level or 0) < origin_level
                or not origin_level]
        area_rank = {"county": 0, "city": 1, None: 2}
        keep.sort(key=lambda c: (area_rank[c.same_area], not c.institution.is_grassroots,
                                 -(c.free_reserved_slots + c.free_reserved_beds), c.institution.name))
    else:
        keep = [c for c in keep if (c.institution.level or 0) >= origin_level and not (
            c.institution.is_grassroots and origin is not None and origin.is_grassroots)]
        keep.sort(key=lambda c: (-(c.institution.level or 0), -(c.free_reserved_slots + c.free_reserved_beds),
                                 c.institution.name))
    return keep


def referral_specialty(db: Session, to_department_id: int | None) -> str | None:
    """The requested specialty of a referral: its target department's specialty, else its name."""
    if to_department_id is None:
        return None
    dept = kit.get(db, Department, to_department_id)
    return (dept.specialty or dept.name) if dept is not None else None
