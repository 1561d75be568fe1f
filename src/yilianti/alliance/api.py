"""Alliance registry JSON API: the same service functions as the pages.

Reads: any logged-in user or API token. Changes: system_admin; alliance_admin for the
alliances they administer (and their memberships); institution_admin for their own
institution and its departments. 404 unknown, 403 forbidden, 422 with `fields`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query, status

from yilianti.alliance import service
from yilianti.alliance.schemas import (
    AllianceCreate,
    AllianceOut,
    AlliancePatch,
    DepartmentIn,
    DepartmentOut,
    DepartmentPatch,
    InstitutionIn,
    InstitutionOut,
    InstitutionPatch,
    MemberOut,
    MembershipEnd,
    MembershipIn,
)
from yilianti.auth.deps import DB, CurrentSubject
from yilianti.kit import clock
from yilianti.kit.schemas import Id, Limit, Offset
from yilianti.models.alliance import Alliance, Department, Institution, Membership

router = APIRouter(prefix="/api/v1", tags=["alliance"])


def _inst(i: Institution) -> dict[str, Any]:
    return {**{k: getattr(i, k) for k in ("id", "name", "short_name", "code", "level", "kind", "province", "city",
                                         "county", "address", "phone", "active")},
            "grassroots": service.is_grassroots(i)}


def _alliance(a: Alliance, member_count: int, leads: list[Institution]) -> dict[str, Any]:
    data = {k: getattr(a, k) for k in AllianceOut.model_fields if hasattr(a, k) and k not in ("leads",)}
    data["member_count"] = member_count
    data["leads"] = [{"id": i.id, "name": i.name, "level": i.level, "kind": i.kind} for i in leads]
    return data


def _alliance_by_id(db: DB, alliance_id: Id) -> dict[str, Any]:
    view = service.alliance_view(db, alliance_id)
    return _alliance(view.alliance, view.member_count, view.leads)


def _member(m: Membership, inst: Institution | None = None) -> dict[str, Any]:
    today = clock.today_local()
    inst = inst or m.institution
    return {"membership_id": m.id, "alliance_id": m.alliance_id, "institution": _inst(inst),
            "role": m.role, "tier": service.tier_of(inst, m.role), "joined_on": m.joined_on,
            "left_on": m.left_on, "current": m.is_current(today), "notes": m.notes}


def _dept(d: Department) -> dict[str, Any]:
    return {k: getattr(d, k) for k in ("id", "institution_id", "name", "specialty", "active")}


# --------------------------------------------------------------------------- alliances


@router.get("/alliances", response_model=list[AllianceOut])
def list_alliances(db: DB, subject: CurrentSubject, model: str | None = None,
                   q: str | None = Query(default=None, description="name, specialty or a member's name"),
                   include_inactive: bool = False) -> list[dict[str, Any]]:
    rows = service.list_alliances(db, model=model, q=q, include_inactive=include_inactive)
    return [_alliance(r.alliance, r.member_count, r.leads) for r in rows]


@router.post("/alliances", status_code=status.HTTP_201_CREATED, response_model=AllianceOut)
def create_alliance(db: DB, subject: CurrentSubject, body: AllianceCreate = Body()) -> dict[str, Any]:
    alliance = service.create_alliance(db, subject, body)
    return _alliance_by_id(db, alliance.id)


@router.get("/alliances/{alliance_id}", response_model=AllianceOut)
def read_alliance(alliance_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    return _alliance_by_id(db, alliance_id)


@router.patch("/alliances/{alliance_id}", response_model=AllianceOut)
def patch_alliance(alliance_id: Id, db: DB, subject: CurrentSubject, body: AlliancePatch = Body()) -> dict[str, Any]:
    service.update_alliance(db, subject, alliance_id, body.model_dump(exclude_unset=True))
    return _alliance_by_id(db, alliance_id)


@router.get("/alliances/{alliance_id}/members", response_model=list[MemberOut])
def list_members(alliance_id: Id, db: DB, subject: CurrentSubject,
                 include_former: bool = Query(default=False, description="also former and future members")
                 ) -> list[dict[str, Any]]:
    view = service.alliance_view(db, alliance_id)
    members = [m for t in service.TIERS for m in view.tiers[t]]
    if include_former:
        members += view.upcoming + view.former
    return [_member(m) for m in members]


@router.post("/alliances/{alliance_id}/members", status_code=status.HTTP_201_CREATED, response_model=MemberOut)
def add_member(alliance_id: Id, db: DB, subject: CurrentSubject, body: MembershipIn = Body()) -> dict[str, Any]:
    membership = service.add_member(db, subject, alliance_id, body)
    return _member(membership, service.get_institution(db, membership.institution_id))


@router.post("/memberships/{membership_id}/end", response_model=MemberOut)
def end_membership(membership_id: Id, db: DB, subject: CurrentSubject,
                   body: MembershipEnd = Body(default_factory=MembershipEnd)) -> dict[str, Any]:
    membership = service.end_membership(db, subject, membership_id, body.left_on)
    return _member(membership, service.get_institution(db, membership.institution_id))


# --------------------------------------------------------------------------- institutions


@router.get("/institutions", response_model=list[InstitutionOut])
def list_institutions(db: DB, subject: CurrentSubject, q: str | None = None, kind: str | None = None,
                      level: Literal[1, 2, 3] | None = None, include_inactive: bool = False,
                      limit: Limit = 200, offset: Offset = 0) -> list[dict[str, Any]]:
    rows = service.list_institutions(db, subject, q=q, kind=kind, level=level, include_inactive=include_inactive)
    offset = max(offset, 0)
    return [_inst(i) for i in rows[offset:offset + min(max(limit, 1), 500)]]


@router.post("/institutions", status_code=status.HTTP_201_CREATED, response_model=InstitutionOut)
def create_institution(db: DB, subject: CurrentSubject, body: InstitutionIn = Body()) -> dict[str, Any]:
    return _inst(service.create_institution(db, subject, body))


@router.get("/institutions/{institution_id}", response_model=InstitutionOut)
def read_institution(institution_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    return _inst(service.get_institution(db, institution_id))


@router.patch("/institutions/{institution_id}", response_model=InstitutionOut)
def patch_institution(institution_id: Id, db: DB, subject: CurrentSubject,
                      body: InstitutionPatch = Body()) -> dict[str, Any]:
    return _inst(service.update_institution(db, subject, institution_id, body.model_dump(exclude_unset=True)))


@router.get("/institutions/{institution_id}/departments", response_model=list[DepartmentOut])
def list_departments(institution_id: Id, db: DB, subject: CurrentSubject) -> list[dict[str, Any]]:
    return [_dept(d) for d in service.departments(db, institution_id)]


@router.post("/institutions/{institution_id}/departments", status_code=status.HTTP_201_CREATED,
             response_model=DepartmentOut)
def add_department(institution_id: Id, db: DB, subject: CurrentSubject, body: DepartmentIn = Body()) -> dict[str, Any]:
    return _dept(service.add_department(db, subject, institution_id, body))


@router.patch("/departments/{department_id}", response_model=DepartmentOut)
def patch_department(department_id: Id, db: DB, subject: CurrentSubject,
                     body: DepartmentPatch = Body()) -> dict[str, Any]:
    """Rename a department, change its specialty, or deactivate/reactivate it (`active`)."""
    return _dept(service.update_department(db, subject, department_id, body.model_dump(exclude_unset=True)))
