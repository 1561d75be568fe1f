"""Alliance registry: alliances, institutions, memberships, departments, and tiers.

Helpers other domains call (read-only, no permission checks, no audit):

- `is_grassroots(institution)` — grassroots (基层) is decided by KIND (community centre/station,
  township centre, village clinic), never by level (DOMAIN.md §2).
- `tier_of(institution, role)` — "lead" (role lead) | "grassroots" | "secondary".
- `current_members(db, alliance_id, on=None)` — memberships in force on a day (today by
  default, Asia/Shanghai), with `.institution` loaded.
- `alliances_of(db, institution_id, on=None)` — the alliances an institution currently belongs to.
- `member_tier(db, alliance_id, institution_id, on=None)` — its tier there, or None if not a member.

Everything that changes data takes the acting `Subject`, checks 404 → 403 → 422 in that
order, flushes (never commits) and writes an audit row with a diff in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.orm import Session

from yilianti.alliance import repository as repo
from yilianti.alliance.schemas import AllianceIn, DepartmentIn, InstitutionIn, MembershipIn, parse
from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import (
    GRASSROOTS_KINDS,
    Alliance,
    Department,
    Institution,
    MemberRole,
    Membership,
)
from yilianti.models.workforce import PracticeSite, Practitioner

TIERS = ("lead", "secondary", "grassroots")
ALLIANCE_FIELDS = tuple(AllianceIn.model_fields)
INSTITUTION_FIELDS = tuple(InstitutionIn.model_fields)
R = TypeVar("R", bound=BaseModel)
E = TypeVar("E", Alliance, Institution)


# =========================================================================== helpers for other domains


def is_grassroots(institution: Institution) -> bool:
    """基层: community centre/station, township centre or village clinic — whatever the level says."""
    return institution.kind in GRASSROOTS_KINDS


def tier_of(institution: Institution, membership_role: str) -> str:
    """Tier of a member within an alliance: the lead(s), then secondary, then grassroots.

    A level-2 community centre is grassroots; a level-1 general hospital is secondary.
    """
    if membership_role == MemberRole.lead:
        return "lead"
    return "grassroots" if is_grassroots(institution) else "secondary"


def current_members(db: Session, alliance_id: int, on: date | None = None) -> list[Membership]:
    """Memberships in force on `on` (default today): joined_on <= on < left_on; `.institution` loaded."""
    return repo.current_memberships(db, alliance_id, on or clock.today_local())


def alliances_of(db: Session, institution_id: int, on: date | None = None) -> list[Alliance]:
    """Active alliances the institution belongs to on `on` (default today), by name."""
    day = on or clock.today_local()
    seen: dict[int, Alliance] = {}
    for m in repo.memberships_of_institution(db, institution_id):
        if m.is_current(day) and m.alliance.active:
            seen.setdefault(m.alliance_id, m.alliance)
    return sorted(seen.values(), key=lambda a: a.name)


def member_tier(db: Session, alliance_id: int, institution_id: int, on: date | None = None) -> str | None:
    """The institution's tier in the alliance on `on` (default today), or None when not a member."""
    day = on or clock.today_local()
    rows = [m for m in repo.memberships_of_pair(db, alliance_id, institution_id) if m.is_current(day)]
    if not rows:
        return None
    inst = kit.get(db, Institution, institution_id)
    assert inst is not None
    return tier_of(inst, rows[0].role)


def _sort_key(m: Membership) -> tuple[int, str]:
    return (-(m.institution.level or 0), m.institution.name)


# =========================================================================== permissions


def can_manage_alliance(subject: Subject, alliance_id: int) -> bool:
    return subject.is_system_admin or alliance_id in subject.alliance_admin_of


def can_edit_institution(subject: Subject, institution_id: int) -> bool:
    return subject.is_system_admin or (
        subject.has("institution_admin") and subject.acting_institution_id == institution_id)


def _require(allowed: bool) -> None:
    if not allowed:
        raise Forbidden()


def _require_system_admin(subject: Subject) -> None:
    if not subject.is_system_admin:
        raise Forbidden("只有系统管理员可以执行此操作")


# =========================================================================== reads


@dataclass
class AllianceRow:
    alliance: Alliance
    member_count: int
    leads: list[Institution]


@dataclass
class AllianceView:
    alliance: Alliance
    tiers: dict[str, list[Membership]]
    former: list[Membership]
    upcoming: list[Membership]
    on: date

    @property
    def member_count(self) -> int:
        return len({m.institution_id for ms in self.tiers.values() for m in ms})

    @property
    def leads(self) -> list[Institution]:
        return [m.institution for m in self.tiers["lead"]]


@dataclass
class InstitutionView:
    institution: Institution
    memberships: list[Membership]
    departments: list[Department]
    practitioners: list[Practitioner]
    visiting: list[PracticeSite]
    on: date
    current: list[Membership] = field(default_factory=list)
    former: list[Membership] = field(default_factory=list)


def list_alliances(db: Session, *, model: str | None = None, q: str | None = None,
                   include_inactive: bool = False, only_ids: frozenset[int] | None = None) -> list[AllianceRow]:
    day = clock.today_local()
    q = (q or "").strip() or None
    alliances = repo.search_alliances(db, day, model=model or None, q=q, include_inactive=include_inactive,
                                      only_ids=only_ids)
    ids = [a.id for a in alliances]
    counts, leads = repo.member_counts(db, ids, day), repo.leads_of(db, ids, day)
    return [AllianceRow(a, counts.get(a.id, 0), leads.get(a.id, [])) for a in alliances]


def get_alliance(db: Session, alliance_id: int) -> Alliance:
    alliance = kit.get(db, Alliance, alliance_id)
    if alliance is None:
        raise NotFound()
    return alliance


def alliance_view(db: Session, alliance_id: int, on: date | None = None) -> AllianceView:
    """Members grouped by tier (lead → secondary → grassroots), former and upcoming apart."""
    alliance = get_alliance(db, alliance_id)
    day = on or clock.today_local()
    tiers: dict[str, list[Membership]] = {t: [] for t in TIERS}
    former, upcoming = [], []
    for m in repo.memberships_of_alliance(db, alliance_id):
        if m.is_current(day):
            tiers[tier_of(m.institution, m.role)].append(m)
        elif m.left_on is not None and m.left_on <= day:
            former.append(m)
        else:
            upcoming.append(m)
    for members in tiers.values():
        members.sort(key=_sort_key)
    former.sort(key=lambda m: (m.left_on or day), reverse=True)
    return AllianceView(alliance, tiers, former, upcoming, day)


def get_institution(db: Session, institution_id: int) -> Institution:
    inst = kit.get(db, Institution, institution_id)
    if inst is None:
        raise NotFound()
    return inst


def institution_view(db: Session, institution_id: int, on: date | None = None) -> InstitutionView:
    inst = get_institution(db, institution_id)
    day = on or clock.today_local()
    memberships = repo.memberships_of_institution(db, institution_id)
    view = InstitutionView(
        institution=inst, memberships=memberships,
        departments=repo.departments_of(db, institution_id),
        practitioners=repo.home_practitioners(db, institution_id),
        visiting=[s for s in repo.visiting_sessions(db, institution_id, day)
                  if s.practitioner.home_institution_id != institution_id],
        on=day,
    )
    view.current = [m for m in memberships if m.is_current(day) or (m.joined_on and m.joined_on > day)]
    view.former = [m for m in memberships if m not in view.current]
    return view


def list_institutions(db: Session, subject: Subject | None = None, *, q: str | None = None,
                      kind: str | None = None, level: int | None = None, editable_only: bool = False,
                      include_inactive: bool = True) -> list[Institution]:
    """Institutions; with `editable_only`, just those the subject may edit (admin list)."""
    only: frozenset[int] | None = None
    if editable_only and subject is not None and not subject.is_system_admin:
        ids: set[int] = set()
        if subject.has("institution_admin") and subject.acting_institution_id:
            ids.add(subject.acting_institution_id)
        only = frozenset(ids)
    return repo.search_institutions(db, q=(q or "").strip() or None, kind=kind or None, level=level,
                                    include_inactive=include_inactive, only_ids=only)


def manageable_alliance_ids(subject: Subject) -> frozenset[int] | None:
    """None = all (system admin)."""
    return None if subject.is_system_admin else subject.alliance_admin_of


def departments(db: Session, institution_id: int) -> list[Department]:
    get_institution(db, institution_id)
    return repo.departments_of(db, institution_id)


# =========================================================================== alliance changes


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _snapshot(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: _plain(getattr(obj, n)) for n in names}


def _text(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _valid(db: Session, schema: type[R], raw: dict[str, Any], self_id: int | None,
           unique: tuple[tuple[str, Callable[[str], Any], str], ...]) -> R:
    """Field checks and uniqueness together, so the form shows every problem at once. `unique`: (field, the row
    holding a value, the message when another row holds it); a field the schema refused is still checked as typed."""
    fields: dict[str, str] = {}
    data: R | None = None
    try:
        data = parse(schema, raw)
    except InvalidInput as exc:
        fields = dict(exc.fields)
    for name, holder, taken in unique:
        value = getattr(data, name) if data else _text(raw, name)
        other = holder(value) if value else None
        if other is not None and other.id != self_id:
            fields[name] = taken
    if fields or data is None:
        raise InvalidInput(fields=fields)
    return data


def _create(db: Session, subject: Subject, model: type[E], resource_type: str, data: BaseModel) -> E:
    """A new active registry row of the validated `data`, audited with its values."""
    values = {k: _plain(v) for k, v in data.model_dump().items()}
    row = model(**values, active=True)
    db.add(row)
    db.flush()
    audit.record(db, subject, "create", resource_type, row.id, detail=audit.diff({}, values))
    return row


def _update(db: Session, subject: Subject, row: Any, resource_type: str, names: tuple[str, ...],
            changes: dict[str, Any], valid: Callable[[dict[str, Any]], BaseModel],
            set_active: Callable[[bool], Any]) -> None:
    """Apply `changes` (any subset of `names`, and `active`); the merged record is validated as a whole, the
    change audited as its diff, and `active` switched by `set_active` (its own audit action)."""
    changes = dict(changes)
    active = changes.pop("active", None)
    before = _snapshot(row, names)
    data = valid({**before, **{k: v for k, v in changes.items() if k in names}})
    after = {k: _plain(v) for k, v in data.model_dump().items()}
    detail = audit.diff(before, after)
    for name, value in after.items():
        setattr(row, name, value)
    if detail:
        db.flush()
        audit.record(db, subject, "update", resource_type, row.id, detail=detail)
    if active is not None and bool(active) != row.active:
        set_active(bool(active))


def _switch_active(db: Session, subject: Subject, row: Any, resource_type: str, active: bool) -> None:
    """Deactivate or reactivate a registry row (never delete: referrals and records point at it), audited."""
    if row.active != active:
        detail = audit.diff({"active": row.active}, {"active": active})
        row.active = active
        db.flush()
        audit.record(db, subject, "reactivate" if active else "deactivate", resource_type, row.id, detail=detail)


def _valid_alliance(db: Session, raw: dict[str, Any], self_id: int | None) -> AllianceIn:
    return _valid(db, AllianceIn, raw, self_id, (
        ("key", lambda key: repo.alliance_named(db, key=key.lower()), "该编码已被其他医联体使用"),
        ("name", lambda name: repo.alliance_named(db, name=name), "已有同名医联体")))


def create_alliance(db: Session, subject: Subject, data: AllianceIn | dict[str, Any]) -> Alliance:
    _require_system_admin(subject)
    return _create(db, subject, Alliance, "alliance",
                   _valid_alliance(db, data if isinstance(data, dict) else data.model_dump(), None))


def update_alliance(db: Session, subject: Subject, alliance_id: int, changes: dict[str, Any]) -> Alliance:
    """Apply `changes` (any subset of the fields); the merged record is validated as a whole."""
    alliance = get_alliance(db, alliance_id)
    _require(can_manage_alliance(subject, alliance_id))
    _update(db, subject, alliance, "alliance", ALLIANCE_FIELDS, changes,
            lambda merged: _valid_alliance(db, merged, alliance_id),
            lambda active: set_alliance_active(db, subject, alliance_id, active))
    return alliance


def set_alliance_active(db: Session, subject: Subject, alliance_id: int, active: bool) -> Alliance:
    alliance = get_alliance(db, alliance_id)
    _require_system_admin(subject)
    _switch_active(db, subject, alliance, "alliance", active)
    return alliance


# =========================================================================== memberships


def _overlaps(a_from: date | None, a_to: date | None, b_from: date | None, b_to: date | None) -> bool:
    """Two membership periods [joined, left) share a day — or start on the same day: a membership ended on the
    day it began is empty, yet holds its start (one membership of a pair and role per joining day)."""
    start_a, end_a = a_from or date.min, a_to or date.max
    start_b, end_b = b_from or date.min, b_to or date.max
    return (start_a < end_b and start_b < end_a) or start_a == start_b


def add_member(db: Session, subject: Subject, alliance_id: int, data: MembershipIn | dict[str, Any]) -> Membership:
    """Add an institution to an alliance; its membership period may not overlap another one there."""
    alliance = get_alliance(db, alliance_id)
    _require(can_manage_alliance(subject, alliance_id))
    if isinstance(data, dict):
        data = parse(MembershipIn, data)
    inst = kit.get(db, Institution, data.institution_id)
    if inst is None:
        raise InvalidInput(fields={"institution_id": "机构不存在"})
    if not inst.active:
        raise InvalidInput(fields={"institution_id": "该机构已停用"})
    if data.joined_on and data.left_on and data.left_on < data.joined_on:
        raise InvalidInput(fields={"left_on": "退出日期不能早于加入日期"})
    for other in repo.memberships_of_pair(db, alliance_id, inst.id):
        if _overlaps(other.joined_on, other.left_on, data.joined_on, data.left_on):
            raise InvalidInput(fields={"institution_id": "该机构在此期间已是本医联体成员"})
    membership = Membership(alliance_id=alliance.id, institution_id=inst.id, role=_plain(data.role),
                            joined_on=data.joined_on, left_on=data.left_on, notes=data.notes)
    db.add(membership)
    db.flush()
    audit.record(db, subject, "create", "membership", membership.id, detail={
        "alliance_id": alliance.id, "institution_id": inst.id, "institution": inst.name,
        **audit.diff({}, {"role": membership.role, "joined_on": data.joined_on, "left_on": data.left_on})})
    return membership


def get_membership(db: Session, membership_id: int) -> Membership:
    membership = kit.get(db, Membership, membership_id)
    if membership is None:
        raise NotFound()
    return membership


def end_membership(db: Session, subject: Subject, membership_id: int, left_on: date | None = None) -> Membership:
    """End a membership on `left_on` (default today): it stays on record as a former member."""
    membership = get_membership(db, membership_id)
    _require(can_manage_alliance(subject, membership.alliance_id))
    day = clock.today_local()
    left_on = left_on or day
    if membership.left_on is not None and membership.left_on <= day:
        raise Conflict("该成员资格已经结束")
    if membership.joined_on is not None and left_on < membership.joined_on:
        raise InvalidInput(fields={"left_on": "退出日期不能早于加入日期"})
    detail = audit.diff({"left_on": membership.left_on}, {"left_on": left_on})
    membership.left_on = left_on
    db.flush()
    audit.record(db, subject, "end", "membership", membership.id,
                 detail={"alliance_id": membership.alliance_id, "institution_id": membership.institution_id,
                         **detail})
    return membership


def parse_date(value: str | None, field_name: str) -> date | None:
    """A form's YYYY-MM-DD date; empty → None."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(fields={field_name: "日期格式应为 YYYY-MM-DD"}) from None


# =========================================================================== institutions


def _valid_institution(db: Session, raw: dict[str, Any], self_id: int | None) -> InstitutionIn:
    return _valid(db, InstitutionIn, raw, self_id, (
        ("name", lambda name: repo.institution_where(db, name=name), "已有同名机构"),
        ("code", lambda code: repo.institution_where(db, code=code), "该登记号已被其他机构使用")))


def create_institution(db: Session, subject: Subject, data: InstitutionIn | dict[str, Any]) -> Institution:
    _require_system_admin(subject)
    return _create(db, subject, Institution, "institution",
                   _valid_institution(db, data if isinstance(data, dict) else data.model_dump(), None))


def update_institution(db: Session, subject: Subject, institution_id: int, changes: dict[str, Any]) -> Institution:
    inst = get_institution(db, institution_id)
    _require(can_edit_institution(subject, institution_id))
    _update(db, subject, inst, "institution", INSTITUTION_FIELDS, changes,
            lambda merged: _valid_institution(db, merged, institution_id),
            lambda active: set_institution_active(db, subject, institution_id, active))
    return inst


def set_institution_active(db: Session, subject: Subject, institution_id: int, active: bool) -> Institution:
    """Deactivate or reactivate (never delete: referrals and records point at institutions)."""
    inst = get_institution(db, institution_id)
    _require_system_admin(subject)
    _switch_active(db, subject, inst, "institution", active)
    return inst


# =========================================================================== departments


def add_department(db: Session, subject: Subject, institution_id: int,
                   data: DepartmentIn | dict[str, Any]) -> Department:
    inst = get_institution(db, institution_id)
    _require(can_edit_institution(subject, institution_id))
    if isinstance(data, dict):
        data = parse(DepartmentIn, data)
    if repo.department_named(db, inst.id, data.name) is not None:
        raise InvalidInput(fields={"name": "本机构已有同名科室"})
    dept = Department(institution_id=inst.id, name=data.name, specialty=data.specialty, active=True)
    db.add(dept)
    db.flush()
    audit.record(db, subject, "create", "department", dept.id,
                 detail={"institution_id": inst.id, **audit.diff({}, data.model_dump())})
    return dept


def get_department(db: Session, department_id: int) -> Department:
    dept = kit.get(db, Department, department_id)
    if dept is None:
        raise NotFound()
    return dept


def update_department(db: Session, subject: Subject, department_id: int, changes: dict[str, Any]) -> Department:
    """Rename (or change the specialty of) a department; `active` deactivates/reactivates it."""
    dept = get_department(db, department_id)
    _require(can_edit_institution(subject, dept.institution_id))
    before = {"name": dept.name, "specialty": dept.specialty, "active": dept.active}
    data = parse(DepartmentIn, {"name": changes.get("name", dept.name),
                                "specialty": changes.get("specialty", dept.specialty)})
    other = repo.department_named(db, dept.institution_id, data.name)
    if other is not None and other.id != dept.id:
        raise InvalidInput(fields={"name": "本机构已有同名科室"})
    after = {**data.model_dump(), "active": dept.active if changes.get("active") is None
             else bool(changes["active"])}
    detail = audit.diff(before, after)
    if detail:
        dept.name, dept.specialty, dept.active = after["name"], after["specialty"], after["active"]
        db.flush()
        action = "update"
        if set(detail) == {"active"}:
            action = "reactivate" if dept.active else "deactivate"
        audit.record(db, subject, action, "department", dept.id,
                     detail={"institution_id": dept.institution_id, **detail})
    return dept
