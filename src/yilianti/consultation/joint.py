"""Joint wards (联合病房): a ward at a community or township centre co-managed by a lead-hospital team.

Both teams see the ward's shared patient list and write rounds records (who, which team,
when, note). The lead hospital sees an admitted patient through an explicit, audited grant
(kind joint_ward, source ("joint_ward_admission", id)) that ends at discharge.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.consultation import repository as repo
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import Institution
from yilianti.models.consultation import JointWard, JointWardAdmission, JointWardMember, RoundRecord, Team
from yilianti.models.patient import GrantKind, Patient
from yilianti.models.workforce import Practitioner
from yilianti.scheduling.rules import share_alliance

SOURCE = "joint_ward_admission"
MANAGER_ROLES = ("institution_admin", "coordinator")


@dataclass(frozen=True)
class WardIn:
    name: str
    lead_institution_id: int
    beds: int = 0
    specialty: str | None = None
    note: str | None = None


def _team_of_subject(subject: Subject, ward: JointWard) -> str:
    """The team the subject acts for on this ward, or 404 when neither institution."""
    if not subject.is_clinical and not subject.has(*MANAGER_ROLES):
        raise NotFound()
    if subject.acting_institution_id == ward.institution_id:
        return Team.local
    if subject.acting_institution_id == ward.lead_institution_id:
        return Team.lead
    raise NotFound()


def get_ward(db: Session, subject: Subject, ward_id: int) -> tuple[JointWard, str]:
    ward = kit.get(db, JointWard, ward_id)
    if ward is None:
        raise NotFound()
    return ward, _team_of_subject(subject, ward)


def wards_for(db: Session, subject: Subject) -> list[JointWard]:
    inst = subject.acting_institution_id
    if inst is None:
        return []
    return repo.wards_of(db, inst)


def create_ward(db: Session, subject: Subject, data: WardIn) -> JointWard:
    """The centre opens the ward (its institution admin or coordinator) with a lead hospital of its alliance."""
    inst = subject.acting_institution_id
    if inst is None or not subject.has(*MANAGER_ROLES):
        raise Forbidden("只有机构管理员或协调员可以设立联合病房")
    fields: dict[str, str] = {}
    if len((data.name or "").strip()) < 2:
        fields["name"] = "请填写病房名称"
    if kit.get(db, Institution, data.lead_institution_id) is None:
        fields["lead_institution_id"] = "牵头医院不存在"
    elif data.lead_institution_id == inst:
        fields["lead_institution_id"] = "牵头医院不能是本机构"
    elif not share_alliance(db, inst, data.lead_institution_id):
        fields["lead_institution_id"] = "牵头医院与本机构不在同一医联体"
    if data.beds < 0 or data.beds > 500:
        fields["beds"] = "数值超出允许范围"
    if fields:
        raise InvalidInput(fields=fields)
    ward = JointWard(name=data.name.strip(), institution_id=inst, lead_institution_id=data.lead_institution_id,
                     beds=data.beds, specialty=data.specialty, note=data.note, started_on=clock.today_local())
    db.add(ward)
    db.flush()
    audit.record(db, subject, "create", "joint_ward", ward.id, detail={"lead_institution_id": data.lead_institution_id})
    return ward


def add_member(db: Session, subject: Subject, ward_id: int, practitioner_id: int, role: str | None = None) -> JointWardMember:
    """A team member: the centre's own staff join the local team, lead-hospital staff the lead team."""
    ward, _ = get_ward(db, subject, ward_id)
    if not subject.has(*MANAGER_ROLES):
        raise Forbidden("只有机构管理员或协调员可以调整联合病房团队")
    p = kit.get(db, Practitioner, practitioner_id)
    if p is None:
        raise InvalidInput(fields={"practitioner_id": "医师不存在"})

    def works_at(inst: int) -> bool:
        return p.home_institution_id == inst or repo.practises_at(db, p.id, inst)

    if p.home_institution_id == ward.lead_institution_id:
        team = Team.lead
    elif works_at(ward.institution_id):
        team = Team.local
    elif works_at(ward.lead_institution_id):
        team = Team.lead
    else:
        raise InvalidInput(fields={"practitioner_id": "该医师既不在本中心也不在牵头医院执业"})
    member = repo.ward_member(db, ward.id, p.id)
    if member is None:
        member = JointWardMember(joint_ward_id=ward.id, practitioner_id=p.id, team=team, role=role,
                                 joined_on=clock.today_local())
        db.add(member)
    else:
        member.left_on, member.team, member.role = None, team, role or member.role
    db.flush()
    audit.record(db, subject, "add_member", "joint_ward", ward.id, detail={"practitioner_id": p.id, "team": team})
    return member


def _membership(db: Session, subject: Subject, ward: JointWard) -> JointWardMember | None:
    if subject.practitioner_id is None:
        return None
    return repo.ward_member(db, ward.id, subject.practitioner_id, current=True)


def admit(db: Session, subject: Subject, ward_id: int, patient_id: int, *, bed_no: str | None = None,
          diagnosis: str | None = None) -> JointWardAdmission:
    ward, team = get_ward(db, subject, ward_id)
    if team != Team.local or not subject.is_clinical:
        raise Forbidden("由病房所在中心的医护人员办理入住")
    policy.require_patient(db, subject, patient_id, action="admit", resource_type="joint_ward", resource_id=ward.id)
    if repo.current_admission_id(db, ward.id, patient_id) is not None:
        raise Conflict("该患者已在本联合病房住院", code="already_admitted")
    adm = JointWardAdmission(joint_ward_id=ward.id, patient_id=patient_id, bed_no=(bed_no or "").strip() or None,
                             diagnosis=(diagnosis or "").strip() or None, admitted_at=clock.now(),
                             admitted_by_user_id=subject.user_id)
    db.add(adm)
    db.flush()
    policy.grant_access(db, subject, patient_id=patient_id, institution_id=ward.lead_institution_id,
                        kind=GrantKind.joint_ward, reason=f"联合病房 {ward.name}", source=(SOURCE, adm.id))
    return adm


def _admission(db: Session, subject: Subject, admission_id: int) -> tuple[JointWardAdmission, JointWard, str]:
    adm = kit.get(db, JointWardAdmission, admission_id)
    if adm is None:
        raise NotFound()
    ward, team = get_ward(db, subject, adm.joint_ward_id)
    return adm, ward, team


def add_round(db: Session, subject: Subject, admission_id: int, note: str) -> RoundRecord:
    """A rounds record by a ward team member of either team."""
    adm, ward, team = _admission(db, subject, admission_id)
    if _membership(db, subject, ward) is None:
        raise Forbidden("只有联合病房团队成员可以记录查房")
    if adm.discharged_at is not None:
        raise Conflict("患者已出院，不能再记录查房", code="discharged")
    note = (note or "").strip()
    if len(note) < 2:
        raise InvalidInput(fields={"note": "请填写查房记录"})
    policy.require_patient(db, subject, adm.patient_id, action="round", resource_type="joint_ward_admission",
                           resource_id=adm.id)
    rec = RoundRecord(admission_id=adm.id, at=clock.now(), user_id=subject.user_id,
                      practitioner_id=subject.practitioner_id, institution_id=subject.acting_institution_id or 0,
                      team=team, note=note)
    db.add(rec)
    db.flush()
    return rec


def discharge(db: Session, subject: Subject, admission_id: int, note: str | None = None) -> JointWardAdmission:
    adm, ward, team = _admission(db, subject, admission_id)
    if team != Team.local or not subject.is_clinical:
        raise Forbidden("由病房所在中心的医护人员办理出院")
    if adm.discharged_at is not None:
        raise Conflict("患者已出院", code="discharged")
    adm.discharged_at, adm.discharge_note = clock.now(), (note or "").strip() or None
    policy.end_grants(db, subject, SOURCE, adm.id)
    audit.record(db, subject, "discharge", "joint_ward_admission", adm.id, patient_id=adm.patient_id)
    db.flush()
    return adm


def admissions(db: Session, subject: Subject, ward_id: int, *, current: bool = True
               ) -> list[tuple[JointWardAdmission, Patient]]:
    """The shared patient list, audited as one read per patient shown."""
    ward, team = get_ward(db, subject, ward_id)
    rows = repo.ward_admissions(db, ward.id, current=current)
    for a, _ in rows:
        audit.record(db, subject, "read", "joint_ward_admission", a.id, patient_id=a.patient_id, basis=team)
    return rows


def rounds(db: Session, subject: Subject, admission_id: int) -> list[RoundRecord]:
    _admission(db, subject, admission_id)
    return repo.rounds_of(db, admission_id)

