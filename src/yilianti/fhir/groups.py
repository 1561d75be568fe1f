"""FHIR Group: the patient groups a member manages, read-only, and what a Group's bulk export exports.

- `team-<id>`: a family-doctor team's residents with a contract in force today;
- `registry-<institution>-<condition>`: the patients under care in one of an institution's chronic registries
  (condition `hypertension`, `diabetes-t2`, `smi`, `tb`).
A group is visible to the clinical staff and system clients acting at its institution (404 for everyone else),
its members limited to the patients the reader may see (`policy.readable_ids`; a contract or a registration is a
care relationship, so normally all of them). Reading a group lists patients: audited as a patient search with the
ids it returned, as a Patient search is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from yilianti.alliance.repository import institution_names
from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.chronic import repository as chronic_repo
from yilianti.chronic.service import CONDITIONS
from yilianti.exceptions import NotFound
from yilianti.fhir import mapping
from yilianti.kit import clock

_ID = re.compile(r"(?:team-([0-9]{1,15})|registry-([0-9]{1,15})-([a-z0-9-]{1,24}))")


@dataclass(frozen=True)
class Group:
    id: str
    institution_id: int
    name: str
    team_id: int | None = None
    condition: str | None = None  # a registry's condition code (as stored: diabetes_t2)


def _condition_id(condition: str) -> str:
    return condition.replace("_", "-")  # a FHIR id has no underscore


def find(db: Session, subject: Subject, id_: str) -> Group:
    """The group, when the subject acts at its institution; NotFound otherwise."""
    m = _ID.fullmatch(id_)
    inst = subject.acting_institution_id
    if m is None or inst is None or not subject.is_clinical:
        raise NotFound()
    if m.group(1):
        team = chronic_repo.team(db, int(m.group(1)))
        if team is None or team.institution_id != inst:
            raise NotFound()
        return Group(id_, inst, f"{team.name}签约居民", team_id=team.id)
    condition = m.group(3).replace("-", "_")
    if int(m.group(2)) != inst or condition not in CONDITIONS:
        raise NotFound()
    return Group(id_, inst, f"{CONDITIONS[condition]}患者登记", condition=condition)


def of_institution(db: Session, subject: Subject) -> list[Group]:
    """Every group of the subject's institution: its teams, then its registries with a patient under care."""
    inst = subject.acting_institution_id
    if inst is None or not subject.is_clinical:
        return []
    return [Group(f"team-{t.id}", inst, f"{t.name}签约居民", team_id=t.id) for t in chronic_repo.teams_of(db, inst)] + \
        [Group(f"registry-{inst}-{_condition_id(c)}", inst, f"{CONDITIONS.get(c, c)}患者登记", condition=c)
         for c in chronic_repo.registries_of(db, inst)]


def members(db: Session, subject: Subject, group: Group) -> list[int]:
    """The group's patients the subject may see, by id (not audited: the caller audits what it shows)."""
    if group.team_id is not None:
        return chronic_repo.team_patients(db, subject, group.team_id, clock.today_local())
    assert group.condition is not None
    return chronic_repo.registry_patients(db, subject, group.institution_id, group.condition)


def resources(db: Session, subject: Subject, groups: list[Group]) -> list[dict[str, object]]:
    """The groups as FHIR Group resources with their members; the patients listed audited as one search."""
    names = institution_names(db, {g.institution_id for g in groups})
    out, shown = [], []
    for g in groups:
        ids = members(db, subject, g)
        shown += ids
        out.append(mapping.group(g.id, g.name, g.institution_id, names.get(g.institution_id, ""), g.condition, ids))
    if groups:
        audit.record(db, subject, "search", "patient", None,
                     detail={"q": " ".join(f"Group/{g.id}" for g in groups)[:200], "results": shown})
    return out
