"""Family-doctor teams and their contracts (家庭医生签约服务): members with their roles and one team lead (团队长);
a contract's renewal (the next period follows the last day of the old one) and termination with a reason, which
ends the care relationship the contract gave the team's institution; and the signing rates (签约率) of each team
and of the institution, overall and for the key populations — residents 65 and over and the patients of each
registry.

A team's population is the institution's residents (registered there or in its care) living in one of the
villages the team serves (its `village` names them, separated by 、 or commas, matched in the address), plus
whoever holds a contract with the team; a team naming no village serves all the institution's residents."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.policy import require_patient
from yilianti.authz.subject import Subject
from yilianti.chronic import repository
from yilianti.chronic.service import CONDITIONS, PACKAGES, ROLES, require_team, sign_contract
from yilianti.chronic.service import _require_staff as require_staff
from yilianti.exceptions import Conflict, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit.i18n import code_table
from yilianti.models.chronic import FamilyDoctorContract, TeamMember

END_REASONS = code_table("chronic.end_reason", {"moved": "迁出本地", "deceased": "死亡", "request": "居民申请解约",
                                                "changed_team": "改签其他团队", "other": "其他"})
CONTRACT_STATES = code_table("chronic.contract_state", {"active": "履约中", "expiring": "30天内到期",
                                                        "pending": "待生效（续约）", "expired": "已到期",
                                                        "terminated": "已解约"})
POPULATIONS = code_table("chronic.population", {"all": "全人群", "elderly": "65岁及以上老年人",
                                                **{k: v for k, v in CONDITIONS.items()}})
EXPIRING_DAYS = 30
ELDERLY_AGE = 65


def _team_member(db: Session, subject: Subject, team_id: int, member_id: int) -> TeamMember:
    team = require_team(db, subject, team_id)
    require_staff(subject, team.institution_id)
    m = repository.member(db, member_id)
    if m is None or m.team_id != team.id:
        raise NotFound()
    return m


def add_member(db: Session, subject: Subject, team_id: int, user_id: int | None, role: str,
               lead: bool = False) -> TeamMember:
    """Add a doctor or nurse of the institution, or a doctor of an alliance partner (the lead hospital's
    specialist), to the team with a role; `lead` makes them the team lead (团队长) in place of the last."""
    team = require_team(db, subject, team_id)
    require_staff(subject, team.institution_id)
    errors = {}
    candidates = {uid: r for uid, _, r, _ in repository.member_candidates(db, team.institution_id,
                                                                          clock.today_local())}
    if user_id is None or user_id not in candidates:
        errors["user_id"] = "请选择本机构或医联体内的医护人员"
    if role not in ROLES:
        errors["role"] = "请选择团队角色"
    if errors:
        raise InvalidInput(fields=errors)
    assert user_id is not None
    if repository.member_of(db, team.id, user_id) is not None:
        raise Conflict("该人员已是本团队成员")
    m = TeamMember(team_id=team.id, user_id=user_id, role=role, is_lead=False)
    db.add(m)
    db.flush()
    if lead:
        _make_lead(db, team.id, m)
    audit.record(db, subject, "create", "family_doctor_team_member", m.id,
                 detail={"team_id": team.id, "user_id": user_id, "role": role, "lead": lead})
    return m


def _make_lead(db: Session, team_id: int, m: TeamMember) -> None:
    for other, _ in repository.members_of(db, team_id):
        other.is_lead = other.id == m.id
    db.flush()


def set_lead(db: Session, subject: Subject, team_id: int, member_id: int) -> TeamMember:
    m = _team_member(db, subject, team_id, member_id)
    _make_lead(db, team_id, m)
    audit.record(db, subject, "update", "family_doctor_team_member", m.id, detail={"team_id": team_id, "lead": True})
    return m


def remove_member(db: Session, subject: Subject, team_id: int, member_id: int) -> None:
    """Remove a member; the team keeps at least one general practitioner (a team without one cannot sign)."""
    m = _team_member(db, subject, team_id, member_id)
    members = [x for x, _ in repository.members_of(db, team_id)]
    if m.role == "gp" and not any(x.role == "gp" and x.id != m.id for x in members):
        raise Conflict("团队至少需要一名全科医生")
    audit.record(db, subject, "delete", "family_doctor_team_member", m.id,
                 detail={"team_id": team_id, "user_id": m.user_id, "role": m.role, "lead": m.is_lead})
    db.delete(m)
    db.flush()


# ------------------------------------------------------------------------------------------------ contracts

def require_contract(db: Session, subject: Subject, contract_id: int) -> FamilyDoctorContract:
    """A contract of a team of the acting institution, its resident's read audited; 404 otherwise."""
    c = repository.contract(db, contract_id)
    if c is None:
        raise NotFound()
    team = require_team(db, subject, c.team_id)
    require_patient(db, subject, c.patient_id, resource_type="family_doctor_contract", resource_id=c.id)
    require_staff(subject, team.institution_id)
    return c


def state(c: FamilyDoctorContract, on: date) -> str:
    """terminated | expired | pending | expiring | active (the SQL twin is repository.contract_state)."""
    if c.status == "terminated":
        return "terminated"
    if c.end_on < on:
        return "expired"
    if c.start_on > on:
        return "pending"
    return "expiring" if c.end_on <= on + timedelta(days=EXPIRING_DAYS) else "active"


def renew(db: Session, subject: Subject, contract_id: int, package: str | None = None) -> FamilyDoctorContract:
    """Renew for another year: from the day after the old contract ends, or from today when it has lapsed."""
    old = require_contract(db, subject, contract_id)
    if old.status == "terminated":
        raise Conflict("已解约的合同不能续约，请重新签约")
    if repository.renewal_of(db, old.id) is not None:
        raise Conflict("该合同已续约")
    today = clock.today_local()
    start = max(old.end_on + timedelta(days=1), today)
    new = sign_contract(db, subject, old.team_id, old.patient_id, package or old.package, start)
    new.renewal_of_id = old.id
    db.flush()
    audit.record(db, subject, "renew", "family_doctor_contract", old.id, patient_id=old.patient_id,
                 detail={"renewal_id": new.id, "start_on": start.isoformat()})
    return new


def terminate(db: Session, subject: Subject, contract_id: int, reason: str, note: str | None = None,
              on: date | None = None) -> FamilyDoctorContract:
    """End a contract early with a reason; the team's institution no longer cares for the resident by it. A
    renewal not yet begun ends with it."""
    c = require_contract(db, subject, contract_id)
    if c.status == "terminated":
        raise Conflict("该合同已解约")
    today = clock.today_local()
    day = on or today
    errors = {}
    if reason not in END_REASONS:
        errors["reason"] = "请选择解约原因"
    note = (note or "").strip()[:300] or None
    if reason == "other" and not note:
        errors["note"] = "请说明解约原因"
    if day > today:
        errors["terminated_on"] = "解约日期不能晚于今天"
    elif day < c.start_on <= today:
        errors["terminated_on"] = "解约日期不能早于签约日期"
    if errors:
        raise InvalidInput(fields=errors)
    _end(db, subject, c, reason, note, day)
    return c


def _end(db: Session, subject: Subject, c: FamilyDoctorContract, reason: str, note: str | None, day: date) -> None:
    c.status, c.terminated_on, c.termination_reason, c.termination_note = "terminated", day, reason, note
    if day >= c.start_on:
        c.end_on = min(c.end_on, day)
    care = repository.care_of_contract(db, c.id)
    if care is not None:
        care.ended_at = clock.now()
    renewal = repository.renewal_of(db, c.id)
    db.flush()
    audit.record(db, subject, "terminate", "family_doctor_contract", c.id, patient_id=c.patient_id,
                 reason=note, detail={"reason": reason, "terminated_on": day.isoformat()})
    if renewal is not None:
        _end(db, subject, renewal, reason, note, day)


# ------------------------------------------------------------------------------------------------ signing rates

@dataclass
class Rate:
    population: str
    residents: int = 0
    signed: int = 0

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.signed / self.residents, 1) if self.residents else None


@dataclass
class TeamRates:
    team_id: int | None  # None: the whole institution
    name: str
    village: str | None
    rates: dict[str, Rate] = field(default_factory=dict)


def born_by(day: date, age: int) -> date:
    """The last birth date of someone `age` years old on `day` (a 29 February birthday counts from 28 February)."""
    return date(day.year - age, day.month, 28) if (day.month, day.day) == (2, 29) else day.replace(year=day.year - age)


def villages(text: str | None) -> list[str]:
    return [v.strip() for v in re.split(r"[、,，;；/\s]+", text or "") if v.strip()]


def village_of(address: str, names: list[str]) -> str | None:
    """The first of the villages `names` (the institution's teams' villages, in team order) the address names."""
    return next((v for v in names if v in address), None)


@dataclass
class _People:
    groups: dict[int, set[str]]  # each resident's populations: all, elderly, the registries
    address: dict[int, str]
    signed: dict[int, set[int]]  # the teams of the contracts in force
    reg_team: dict[int, set[int]]  # the teams of the registrations under care


def _people(db: Session, inst: int, day: date) -> _People:
    elderly_born_by = born_by(day, ELDERLY_AGE)
    people = repository.residents(db, inst)
    groups: dict[int, set[str]] = {pid: {"all"} | ({"elderly"} if birth and birth <= elderly_born_by else set())
                                   for pid, birth, _ in people}
    address = {pid: addr or "" for pid, _, addr in people}
    reg_team: dict[int, set[int]] = {}
    for pid, condition, team_id in repository.registered_conditions(db, inst):
        groups.setdefault(pid, {"all"}).add(condition)
        if team_id is not None:
            reg_team.setdefault(pid, set()).add(team_id)
    signed: dict[int, set[int]] = {}
    for pid, team_id in repository.contracts_in_force(db, inst, day):
        signed.setdefault(pid, set()).add(team_id)
        groups.setdefault(pid, {"all"})
    return _People(groups, address, signed, reg_team)


def _count(row: TeamRates, pops: set[str], signed: bool) -> None:
    for pop in pops:
        row.rates[pop].residents += 1
        row.rates[pop].signed += signed


def _acting(subject: Subject) -> int:
    inst = subject.acting_institution_id
    if inst is None or not subject.is_clinical and not subject.has("institution_admin"):
        raise NotFound()
    return inst


def signing_rates(db: Session, subject: Subject, on: date | None = None) -> list[TeamRates]:
    """The signing rate of each team of the acting institution, then of the institution (last row): residents
    with a contract in force over the residents of each population (all, 65+, each registry)."""
    inst = _acting(subject)
    p = _people(db, inst, on or clock.today_local())
    out = []
    for team in repository.teams_of(db, inst):
        names = villages(team.village)
        row = TeamRates(team.id, team.name, team.village, {k: Rate(k) for k in POPULATIONS})
        for pid, pops in p.groups.items():
            ours = team.id in p.signed.get(pid, ()) or team.id in p.reg_team.get(pid, ())
            if ours or not names or village_of(p.address.get(pid, ""), names) is not None:
                _count(row, pops, team.id in p.signed.get(pid, ()))
        out.append(row)
    total = TeamRates(None, "", None, {k: Rate(k) for k in POPULATIONS})
    for pid, pops in p.groups.items():
        _count(total, pops, pid in p.signed)
    out.append(total)
    return out


def village_rates(db: Session, subject: Subject, on: date | None = None,
                  team_id: int | None = None) -> list[TeamRates]:
    """The signing rate of each village the institution's teams serve (of `team_id`'s villages only, when
    given): its residents (the address names the village) with a contract in force with any team of the
    institution, per population. A row's `name` is the village, `team_id` the team serving it."""
    inst = _acting(subject)
    p = _people(db, inst, on or clock.today_local())
    rows: dict[str, TeamRates] = {}  # each village once, with the first team naming it
    for team in repository.teams_of(db, inst):
        if team_id is None or team.id == team_id:
            for village in villages(team.village):
                rows.setdefault(village, TeamRates(team.id, village, village, {k: Rate(k) for k in POPULATIONS}))
    if rows:  # the residents walked once, each counted in every village its address names
        for pid, pops in p.groups.items():
            address = p.address.get(pid, "")
            for village in [v for v in rows if v in address] if address else ():
                _count(rows[village], pops, pid in p.signed)
    return list(rows.values())


__all__ = ["CONTRACT_STATES", "END_REASONS", "PACKAGES", "POPULATIONS", "ROLES", "add_member", "remove_member",
           "renew", "set_lead", "signing_rates", "state", "terminate", "village_of", "village_rates", "villages"]
