"""Practitioners and multi-site practice (多点执业): directory, weekly sessions, administration.

Functions other domains call:
- `practising_at(db, institution_id, on=None)`: active practitioners who practise at an
  institution on a date (home staff plus visitors whose practice site is in force that day).
- `sessions_of(db, practitioner_id, on=None)`: a practitioner's practice sites in force
  (on a date, or from today on), with institution and department loaded.
- `is_qualified_expert(practitioner, min_years=3, on=None)`: active, not a trainee (进修),
  with at least `min_years` years of independent practice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, true
from sqlalchemy.orm import Session

from yilianti.admin import scope
from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.exceptions import Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import Department, Institution
from yilianti.models.workforce import PracticeSite, Practitioner
from yilianti.workforce import repository
from yilianti.workforce.schemas import PERIODS, WEEKDAYS, PractitionerIn, SiteIn, parse

EDITABLE = ("name", "sex", "title", "specialty", "licence_no", "licence_date", "is_department_head", "is_trainee",
            "home_institution_id", "department_id", "phone")


# ---------------------------------------------------------------- reading


@dataclass
class Filters:
    institution_id: int | None = None
    specialty: str | None = None
    title: str | None = None
    q: str | None = None
    practises_at: int | None = None  # home or visiting
    include_inactive: bool = False
    institution_ids: set[int] | None = None  # admin scoping: None = all


Page = kit.Page[Practitioner]


def _site_in_force(on: date) -> ColumnElement[bool]:
    return and_(or_(PracticeSite.starts_on.is_(None), PracticeSite.starts_on <= on),
                or_(PracticeSite.ends_on.is_(None), PracticeSite.ends_on >= on))


def _site_current_or_future(on: date) -> ColumnElement[bool]:
    return or_(PracticeSite.ends_on.is_(None), PracticeSite.ends_on >= on)


def _where(f: Filters, today: date, viewer: Subject) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if not f.include_inactive:
        conds.append(Practitioner.active.is_(True))
    if f.institution_id:
        conds.append(Practitioner.home_institution_id == f.institution_id)
    if f.institution_ids is not None:
        conds.append(Practitioner.home_institution_id.in_(f.institution_ids or {-1}))
    if f.specialty:
        conds.append(Practitioner.specialty == f.specialty)
    if f.title:
        conds.append(Practitioner.title == f.title)
    if f.q and f.q.strip():
        like = f"%{f.q.strip().lower()}%"
        dept_match = exists().where(Department.id == Practitioner.department_id,
                                    func.lower(Department.name).like(like))
        # a licence number is matched only where the viewer may see it: otherwise the search would tell anyone
        # whose number it is, one guessed digit at a time
        licence = and_(func.lower(Practitioner.licence_no).like(like), contact_visible(viewer))
        conds.append(or_(func.lower(Practitioner.name).like(like), func.lower(Practitioner.specialty).like(like),
                         licence, dept_match))
    if f.practises_at:
        visiting = exists().where(PracticeSite.practitioner_id == Practitioner.id,
                                  PracticeSite.institution_id == f.practises_at, _site_current_or_future(today))
        conds.append(or_(Practitioner.home_institution_id == f.practises_at, visiting))
    return conds


def search(db: Session, viewer: Subject, f: Filters, page: int = 1, per_page: int = 20) -> Page:
    today = clock.today_local()
    conds = _where(f, today, viewer)
    return kit.page(db, repository.directory_statement(*conds), page, per_page)


def get(db: Session, practitioner_id: int) -> Practitioner:
    p = repository.practitioner_loaded(db, practitioner_id)
    if p is None:
        raise NotFound()
    return p


def current_sites(p: Practitioner, on: date | None = None) -> list[PracticeSite]:
    """The practitioner's loaded sites still in force on `on` or later, in weekly order."""
    on = on or clock.today_local()
    rows = [s for s in p.sites if s.ends_on is None or s.ends_on >= on]
    return sorted(rows, key=_site_order)


def _site_order(s: PracticeSite) -> tuple[int, int, int]:
    return (s.weekday or 8, list(PERIODS).index(s.period) if s.period in PERIODS else 9, s.id)


def sessions_of(db: Session, practitioner_id: int, on: date | None = None) -> list[PracticeSite]:
    """Practice sites in force on `on` (or, without a date, from today on), weekly order."""
    today = clock.today_local()
    cond = _site_in_force(on) if on else _site_current_or_future(today)
    return sorted(repository.sites_of(db, practitioner_id, cond), key=_site_order)


def practising_at(db: Session, institution_id: int, on: date | None = None) -> list[Practitioner]:
    """Active practitioners who practise at an institution: its own staff plus visiting ones
    whose practice site there is in force on `on` (default today), ordered by name."""
    on = on or clock.today_local()
    visiting = exists().where(PracticeSite.practitioner_id == Practitioner.id,
                              PracticeSite.institution_id == institution_id, _site_in_force(on))
    return repository.active_practitioners_where(db, or_(Practitioner.home_institution_id == institution_id, visiting))


def is_qualified_expert(practitioner: Practitioner, min_years: int = 3, on: date | None = None) -> bool:
    """An expert may answer teleconsultations: ≥ min_years of independent practice (DOMAIN §7)."""
    if not practitioner.active or practitioner.is_trainee:
        return False
    return practitioner.years_of_practice(on or clock.today_local()) >= min_years


def weekly_table(sites: list[PracticeSite]) -> dict[str, Any]:
    """Mon–Sun × am/pm grid; a whole-day session fills both halves; no weekday → 'as arranged'."""
    grid: dict[tuple[int, str], list[PracticeSite]] = {(d, p): [] for d in WEEKDAYS for p in ("am", "pm")}
    arranged: list[PracticeSite] = []
    for s in sites:
        if s.weekday is None:
            arranged.append(s)
            continue
        for half in ("am", "pm") if s.period == "all" else (s.period,):
            grid.setdefault((s.weekday, half), []).append(s)
    return {"grid": grid, "arranged": arranged}


def filter_options(db: Session) -> dict[str, Any]:
    return {"institutions": repository.active_institution_choices(db),
            "specialties": repository.active_specialties(db)}


def departments_of(db: Session, institution_id: int) -> list[Department]:
    return repository.active_departments_of(db, institution_id)


# ---------------------------------------------------------------- administration


def _snapshot(p: Practitioner) -> dict[str, Any]:
    return {k: getattr(p, k) for k in (*EDITABLE, "active")}


def _check_refs(db: Session, data: PractitionerIn) -> None:
    fields: dict[str, str] = {}
    inst = kit.get(db, Institution, data.home_institution_id)
    if inst is None:
        fields["home_institution_id"] = "机构不存在"
    if data.department_id is not None:
        dept = kit.get(db, Department, data.department_id)
        if dept is None:
            fields["department_id"] = "科室不存在"
        elif dept.institution_id != data.home_institution_id:
            fields["department_id"] = "科室不属于所选执业机构"
    if fields:
        raise InvalidInput(fields=fields)


def _require_writer(subject: Subject, institution_id: int) -> None:
    if not scope.can_write(subject, institution_id):
        raise Forbidden("您只能管理本机构的医务人员")


def create_practitioner(db: Session, actor: Subject, data: PractitionerIn) -> Practitioner:
    _require_writer(actor, data.home_institution_id)
    _check_refs(db, data)
    p = Practitioner(**data.model_dump(), active=True)
    db.add(p)
    db.flush()
    audit.record(db, actor, "create", "practitioner", p.id,
                 detail={k: audit.plain(v) for k, v in _snapshot(p).items()})
    return p


def update_practitioner(db: Session, actor: Subject, practitioner_id: int, changes: dict[str, Any]) -> Practitioner:
    """Apply changed fields; the result must be valid as a whole (field errors change nothing)."""
    p = kit.get(db, Practitioner, practitioner_id)
    if p is None:
        raise NotFound()
    _require_writer(actor, p.home_institution_id)
    before = _snapshot(p)
    active = changes.pop("active", None)
    edits = {k: v for k, v in changes.items() if k in EDITABLE}
    if edits:  # (de)activation alone does not re-validate the other fields
        data = parse(PractitionerIn, {**{k: before[k] for k in EDITABLE}, **edits})
        if data.home_institution_id != p.home_institution_id:
            _require_writer(actor, data.home_institution_id)
        _check_refs(db, data)
        for k, v in data.model_dump().items():
            setattr(p, k, v)
    if active is not None:
        p.active = bool(active)
    db.flush()
    change = audit.diff(before, _snapshot(p))
    if change:
        action = "update"
        if set(change) == {"active"}:
            action = "reactivate" if p.active else "deactivate"
        audit.record(db, actor, action, "practitioner", p.id, detail=change)
    return p


def set_active(db: Session, actor: Subject, practitioner_id: int, active: bool) -> Practitioner:
    return update_practitioner(db, actor, practitioner_id, {"active": active})


def _periods_overlap(a: str, b: str) -> bool:
    return a == b or "all" in (a, b)


def _dates_overlap(a0: date | None, a1: date | None, b0: date | None, b1: date | None) -> bool:
    lo = date.min
    hi = date.max
    return (a0 or lo) <= (b1 or hi) and (b0 or lo) <= (a1 or hi)


def add_site(db: Session, actor: Subject, practitioner_id: int, data: SiteIn) -> PracticeSite:
    p = kit.get(db, Practitioner, practitioner_id)
    if p is None:
        raise NotFound()
    if not (scope.can_write(actor, p.home_institution_id) or scope.can_write(actor, data.institution_id)):
        raise Forbidden("您只能为本机构的医务人员或在本机构出诊的安排登记多点执业")
    fields: dict[str, str] = {}
    inst = kit.get(db, Institution, data.institution_id)
    if inst is None:
        fields["institution_id"] = "机构不存在"
    elif inst.id == p.home_institution_id:
        fields["institution_id"] = "多点执业机构不能是本人的第一执业机构"
    if data.department_id is not None:
        dept = kit.get(db, Department, data.department_id)
        if dept is None or dept.institution_id != data.institution_id:
            fields["department_id"] = "科室不属于所选机构"
    if data.starts_on and data.ends_on and data.ends_on < data.starts_on:
        fields["ends_on"] = "结束日期不能早于开始日期"
    if not fields:
        others = repository.sites_of(db, p.id)
        for s in others:
            if not _dates_overlap(s.starts_on, s.ends_on, data.starts_on, data.ends_on):
                continue
            if data.weekday is None or s.weekday is None:
                if s.weekday is None and data.weekday is None and s.institution_id == data.institution_id:
                    fields["weekday"] = "已有相同的多点执业安排"
                continue
            if s.weekday == data.weekday and _periods_overlap(s.period, data.period):
                if s.institution_id == data.institution_id:
                    fields["weekday"] = "该时段已有相同机构的出诊安排"
                else:
                    fields["weekday"] = "该时段已安排在其他机构出诊"
                break
    if fields:
        raise InvalidInput(fields=fields)
    site = PracticeSite(practitioner_id=p.id, **data.model_dump())
    db.add(site)
    db.flush()
    audit.record(db, actor, "create", "practice_site", site.id,
                 detail={"practitioner_id": p.id, **{k: audit.plain(v) for k, v in data.model_dump().items()}})
    return site


def _site_for_change(db: Session, actor: Subject, practitioner_id: int, site_id: int) -> PracticeSite:
    site = kit.get(db, PracticeSite, site_id)
    if site is None or site.practitioner_id != practitioner_id:
        raise NotFound()
    p = kit.get(db, Practitioner, practitioner_id)
    assert p is not None
    if not (scope.can_write(actor, p.home_institution_id) or scope.can_write(actor, site.institution_id)):
        raise Forbidden("您只能管理本机构相关的多点执业安排")
    return site


def end_site(db: Session, actor: Subject, practitioner_id: int, site_id: int, on: date | None = None) -> PracticeSite:
    """The arrangement stops after `on` (default today); history is kept."""
    site = _site_for_change(db, actor, practitioner_id, site_id)
    on = on or clock.today_local()
    if site.starts_on and on < site.starts_on:
        raise InvalidInput(fields={"ends_on": "结束日期不能早于开始日期"})
    before = {"ends_on": site.ends_on}
    site.ends_on = on
    audit.record(db, actor, "update", "practice_site", site.id,
                 detail={"practitioner_id": practitioner_id, **audit.diff(before, {"ends_on": on})})
    db.flush()
    return site


def remove_site(db: Session, actor: Subject, practitioner_id: int, site_id: int) -> None:
    """Delete an arrangement entered by mistake (ending it keeps history; this does not)."""
    site = _site_for_change(db, actor, practitioner_id, site_id)
    detail = {k: audit.plain(getattr(site, k)) for k in ("practitioner_id", "institution_id", "department_id",
                                                             "weekday", "period", "starts_on", "ends_on")}
    db.delete(site)
    audit.record(db, actor, "delete", "practice_site", site_id, detail=detail)
    db.flush()


def admin_list(db: Session, actor: Subject, f: Filters, page: int = 1, per_page: int = 30) -> Page:
    scope.require_admin(actor)
    f.institution_ids = scope.readable_institutions(db, actor)
    f.include_inactive = True
    return search(db, actor, f, page, per_page)


def admin_get(db: Session, actor: Subject, practitioner_id: int) -> Practitioner:
    scope.require_admin(actor)
    p = get(db, practitioner_id)
    if not scope.can_read(db, actor, p.home_institution_id):
        raise NotFound()
    return p


# ---------------------------------------------------------------- output


def site_out(s: PracticeSite) -> dict[str, Any]:
    return {"id": s.id, "institution_id": s.institution_id, "institution_name": s.institution.name,
            "department_id": s.department_id, "department_name": s.department.name if s.department else None,
            "weekday": s.weekday, "period": s.period, "starts_on": s.starts_on, "ends_on": s.ends_on, "note": s.note}


def may_see_contact(viewer: Subject, p: Practitioner) -> bool:
    """A practitioner's mobile and licence number are for the practitioner and the administrators who manage
    them (admin.scope.can_write on the home institution), not for every account or API token."""
    return viewer.practitioner_id == p.id or (scope.is_admin(viewer) and scope.can_write(viewer, p.home_institution_id))


def contact_visible(viewer: Subject) -> ColumnElement[bool]:
    """`may_see_contact` as a condition on Practitioner (the directory search's licence match)."""
    own = Practitioner.id == viewer.practitioner_id if viewer.practitioner_id else false()
    if not scope.is_admin(viewer):
        return own
    managed = scope.writable_institutions(viewer)
    return true() if managed is None else or_(own, Practitioner.home_institution_id.in_(managed or {-1}))


def practitioner_out(p: Practitioner, viewer: Subject, on: date | None = None) -> dict[str, Any]:
    today = on or clock.today_local()
    hidden = {} if may_see_contact(viewer, p) else {"phone": None, "licence_no": None}
    return {
        **{k: getattr(p, k) for k in ("id", "name", "sex", "title", "specialty", "licence_no", "licence_date",
                                      "is_department_head", "is_trainee", "home_institution_id", "department_id",
                                      "phone", "active")},
        "years_of_practice": p.years_of_practice(today),
        "home_institution_name": p.home_institution.name,
        "department_name": p.department.name if p.department else None,
        "sites": [site_out(s) for s in current_sites(p, today)],
        **hidden,
    }
