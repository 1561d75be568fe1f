"""Chronic care: family-doctor teams sign contracts with residents, enrol them in a condition's registry,
and follow them up by the national basic public-health rules (国家基本公共卫生服务规范 第三版).

A follow-up's values classify it (`classify_visit`), and the classification sets the next follow-up's date
(`rules.next_visit`, every interval there). Hypertension and diabetes (`classify`): controlled: the next
routine visit (`chronic_routine_days`, ≥ 4 a year); first uncontrolled: re-check within
`chronic_recheck_days`; uncontrolled twice in a row: refer, follow up within `chronic_recheck_days`; urgent
(SBP ≥ 180 or DBP ≥ 110; glucose ≥ 16.7 or ≤ 3.9 mmol/L): urgent referral, follow up within
`chronic_recheck_days`. Severe mental disorders by the danger grade, symptoms, insight and social function
(stable / basically stable / unstable, `rules.smi_class`); tuberculosis by the missed doses and side effects
in its treatment phase (`rules.tb_class`). Every read or write of a patient goes through `require_patient`.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.policy import require_patient
from yilianti.authz.subject import Subject
from yilianti.chronic import alarms, repository, rules, visit
from yilianti.chronic.rules import controlled, urgent_values
from yilianti.chronic.visit import VisitIn
from yilianti.config import get_settings
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.i18n import code_table
from yilianti.models.chronic import (
    ChronicFollowUp,
    ChronicRegistration,
    FamilyDoctorContract,
    FamilyDoctorTeam,
    TeamMember,
)
from yilianti.models.patient import CareKind, CareRelationship, Patient

CONDITIONS = code_table("chronic.condition", {"hypertension": "高血压", "diabetes_t2": "2型糖尿病",
                                               "smi": "严重精神障碍", "tb": "肺结核"})
ICD10 = {"hypertension": "I10", "diabetes_t2": "E11", "smi": "F20", "tb": "A16"}
# the ICD-10 categories of each registry: the six severe mental disorders of the national programme; TB A15–A19
ICD10_CATEGORIES = {"hypertension": ("I10", "I11", "I12", "I13", "I15"), "diabetes_t2": ("E11",),
                    "smi": ("F20", "F22", "F25", "F31", "F06", *(f"F7{i}" for i in range(10))),
                    "tb": ("A15", "A16", "A17", "A18", "A19")}
CLASSIFICATIONS = code_table("chronic.classification", {
    "controlled": "控制满意", "uncontrolled": "控制不满意", "refer": "两次控制不满意，转诊", "urgent": "紧急转诊",
    "stable": "稳定，3个月随访", "basically_stable": "基本稳定，观察随访", "unstable": "不稳定，立即转诊",
    "adherent": "按时服药，继续督导", "missed": "漏服药，加强教育", "missed_report": "漏服药1周以上，报告上级"})
REASONS = code_table("chronic.reason", {"first": "首次随访", "routine": "常规随访", "recheck": "2周内复查",
                                        "after_referral": "转诊后2周内随访", "guided": "专科指导下1个月随访"})
PACKAGES = code_table("chronic.package", {"basic": "基础服务包", "personalised": "个性化服务包"})
ROLES = code_table("chronic.role", {"gp": "全科医生", "nurse": "护士", "public_health": "公共卫生人员",
                                    "specialist": "牵头医院专科医生"})


def _require_staff(subject: Subject, institution_id: int) -> None:
    if subject.acting_institution_id != institution_id or not subject.has("doctor", "nurse", "institution_admin"):
        raise Forbidden("只有本机构的医护人员可以管理家庭医生团队")


def require_team(db: Session, subject: Subject, team_id: int) -> FamilyDoctorTeam:
    """The team, seen by staff acting at its institution; 404 for everyone else."""
    team = kit.get(db, FamilyDoctorTeam, team_id)
    if team is None or team.institution_id != subject.acting_institution_id or not subject.is_clinical:
        raise NotFound()
    return team


def create_team(db: Session, subject: Subject, name: str, village: str | None,
                members: list[tuple[int, str]]) -> FamilyDoctorTeam:
    inst = subject.acting_institution_id
    if inst is None:
        raise Forbidden()
    _require_staff(subject, inst)
    errors = {}
    if not name.strip():
        errors["name"] = "请填写团队名称"
    if any(role not in ROLES for _, role in members):
        errors["members"] = "成员角色无效"
    if errors:
        raise InvalidInput(fields=errors)
    team = FamilyDoctorTeam(institution_id=inst, name=name.strip(), village=(village or "").strip() or None)
    db.add(team)
    db.flush()
    for user_id, role in members:
        db.add(TeamMember(team_id=team.id, user_id=user_id, role=role))
    db.flush()
    audit.record(db, subject, "create", "family_doctor_team", team.id, detail={"members": len(members)})
    return team


def sign_contract(db: Session, subject: Subject, team_id: int, patient_id: int, package: str,
                  start_on: date | None = None, months: int = 12) -> FamilyDoctorContract:
    """A resident signs with the team: the team's institution cares for the patient while the contract runs."""
    team = require_team(db, subject, team_id)
    _require_staff(subject, team.institution_id)
    require_patient(db, subject, patient_id, action="contract", resource_type="family_doctor_team",
                    resource_id=team.id)
    if package not in PACKAGES:
        raise InvalidInput(fields={"package": "请选择服务包"})
    start = start_on or clock.today_local()
    if repository.active_contract(db, patient_id, team.id, start) is not None:
        raise Conflict("该居民已与本团队签约")
    month = start.month - 1 + months
    year, month = start.year + month // 12, month % 12 + 1
    anniversary = date(year, month, min(start.day, calendar.monthrange(year, month)[1]))
    end = anniversary - timedelta(days=1)  # a one-year contract from 2026-03-02 runs to 2027-03-01
    contract = FamilyDoctorContract(patient_id=patient_id, team_id=team.id, package=package, start_on=start,
                                    end_on=end, status="active", signed_by_user_id=subject.user_id)
    db.add(contract)
    db.flush()
    db.add(CareRelationship(patient_id=patient_id, institution_id=team.institution_id, kind=CareKind.contract,
                            source_type="family_doctor_contract", source_id=contract.id, started_at=clock.now()))
    audit.record(db, subject, "create", "family_doctor_contract", contract.id, patient_id=patient_id,
                 detail={"team_id": team.id, "package": package, "end_on": end.isoformat()})
    return contract


def enrol(db: Session, subject: Subject, patient_id: int, condition: str, *, team_id: int | None = None,
          enrolled_on: date | None = None) -> ChronicRegistration:
    """Enrol the patient in a condition's registry at the acting institution; the first follow-up is due
    `chronic_first_follow_up_days` later."""
    inst = subject.acting_institution_id
    if inst is None:
        raise Forbidden()
    _require_staff(subject, inst)
    if team_id is not None:
        require_team(db, subject, team_id)
    if condition not in CONDITIONS:
        raise InvalidInput(fields={"condition": "请选择病种"})
    require_patient(db, subject, patient_id, action="enrol", resource_type="chronic_registration")
    if repository.registration_under_care(db, patient_id, condition) is not None:
        raise Conflict("该患者已在此病种的管理中")
    day = enrolled_on or clock.today_local()
    reg = ChronicRegistration(patient_id=patient_id, condition=condition, icd10=ICD10[condition], enrolled_on=day,
                              institution_id=inst, team_id=team_id, responsible_user_id=subject.user_id,
                              status="under_care")
    db.add(reg)
    db.flush()
    _plan(db, reg, day + timedelta(days=get_settings().chronic_first_follow_up_days), "first")
    audit.record(db, subject, "create", "chronic_registration", reg.id, patient_id=patient_id,
                 detail={"condition": condition, "team_id": team_id})
    return reg


def condition_of(icd10: str) -> str | None:
    """The registry an ICD-10 code belongs to (ICD10_CATEGORIES): I10–I13, I15 hypertension; E11 type 2
    diabetes; F20, F22, F25, F31, F06, F70–F79 severe mental disorder; A15–A19 tuberculosis."""
    code = icd10.strip().upper()[:3]
    return next((c for c, categories in ICD10_CATEGORIES.items() if code in categories), None)


def enrol_from_down_referral(db: Session, subject: Subject, patient_id: int, institution_id: int,
                             diagnoses: list[dict[str, Any]], referral_id: int, *,
                             arrived: bool = False) -> list[ChronicFollowUp]:
    """A down-referral accepted at `institution_id` with a hypertension or diabetes diagnosis: the patient is
    enrolled there (or stays enrolled) and a follow-up is due `chronic_down_referral_days` later; when the
    patient's arrival is recorded (`arrived`), the open after-referral follow-up is due that many days after
    it. The caller (referral.service accept/arrive) holds the receiving institution's access."""
    today = clock.today_local()
    due = today + timedelta(days=get_settings().chronic_down_referral_days)
    planned = []
    for condition in dict.fromkeys(c for d in diagnoses if (c := condition_of(str(d.get("icd10") or "")))):
        reg = repository.registration_under_care(db, patient_id, condition)
        if reg is None or reg.institution_id != institution_id:
            reg = ChronicRegistration(patient_id=patient_id, condition=condition, icd10=ICD10[condition],
                                      enrolled_on=today, institution_id=institution_id,
                                      team_id=repository.contract_team(db, patient_id, institution_id, today),
                                      responsible_user_id=None, status="under_care")
            db.add(reg)
            db.flush()
            audit.record(db, subject, "create", "chronic_registration", reg.id, patient_id=patient_id,
                         detail={"condition": condition, "referral_id": referral_id})
        task = repository.open_follow_up(db, reg.id)
        if task is None:
            task = _plan(db, reg, due, "after_referral")
        elif task.due_on > due or (arrived and task.reason == "after_referral"):
            task.due_on, task.reason = due, "after_referral"
        planned.append(task)
    db.flush()
    return planned


def _plan(db: Session, reg: ChronicRegistration, due_on: date, reason: str) -> ChronicFollowUp:
    task = ChronicFollowUp(registration_id=reg.id, patient_id=reg.patient_id, institution_id=reg.institution_id,
                           team_id=reg.team_id, due_on=due_on, reason=reason, status="open")
    db.add(task)
    db.flush()
    return task


def classify(condition: str, sbp: int | None, dbp: int | None, glucose: float | None,
             previous: str | None, *, danger: bool = False, adverse: str | None = None,
             complication: bool = False) -> str:
    """controlled | uncontrolled | refer | urgent, by the rules in the module's docstring: urgent values or
    danger signs → urgent; a new complication or intolerable side effects → refer; uncontrolled values or
    side effects → uncontrolled the first time, refer the second time in a row."""
    if danger or urgent_values(condition, sbp, dbp, glucose):
        return "urgent"
    if complication or adverse == "severe":
        return "refer"
    if controlled(condition, sbp, dbp, glucose) and adverse != "present":
        return "controlled"
    return "refer" if previous in ("uncontrolled", "refer") else "uncontrolled"


def classify_visit(condition: str, data: VisitIn, previous: str | None) -> str:
    """The classification of a visit of any registry: SMI by `rules.smi_class`, TB by `rules.tb_class`,
    hypertension and diabetes by `classify`."""
    if condition == "smi":
        return rules.smi_class(data.danger_grade, symptoms=any(c != "none" for c in data.symptoms),
                               insight=data.insight, social_poor="poor" in data.social.values(),
                               adverse=data.adverse, physical=data.complication)
    if condition == "tb":
        return rules.tb_class(data.missed_doses, adverse=data.adverse, complication=data.complication)
    return classify(condition, data.sbp, data.dbp, data.fasting_glucose, previous, danger=bool(data.danger),
                    adverse=data.adverse, complication=data.complication)


def visit_class(condition: str, sbp: int | None, dbp: int | None, glucose: float | None, *,
                adverse: str | None = None, complication: bool = False) -> str:
    """此次随访分类 of the hypertension and diabetes forms: 并发症, else 不良反应, else 控制满意 / 控制不满意 by the
    values (the SMI and TB forms' class is their classification)."""
    if complication:
        return "complication"
    if adverse in ("present", "severe"):
        return "adverse"
    return "controlled" if controlled(condition, sbp, dbp, glucose) else "uncontrolled"


def open_task(db: Session, subject: Subject, follow_up_id: int) -> tuple[ChronicFollowUp, ChronicRegistration]:
    """A follow-up of the acting institution, its patient's read authorised and audited."""
    task = kit.get(db, ChronicFollowUp, follow_up_id)
    if task is None or task.institution_id != subject.acting_institution_id:
        raise NotFound()
    require_patient(db, subject, task.patient_id, resource_type="chronic_follow_up", resource_id=task.id)
    reg = kit.get(db, ChronicRegistration, task.registration_id)
    assert reg is not None
    return task, reg


def record_follow_up(db: Session, subject: Subject, follow_up_id: int, data: VisitIn, *,
                     opened: tuple[ChronicFollowUp, ChronicRegistration] | None = None) -> ChronicFollowUp:
    """Record the visit on an open follow-up: classify it, close it and plan the next. Returns the next.
    `opened`: what `open_task` gave the caller for this follow-up in the same request (a page or the API reads
    the registry first to read the form by it), so the patient's read is checked and audited once."""
    task, reg = opened if opened is not None and opened[0].id == follow_up_id else open_task(db, subject, follow_up_id)
    _require_staff(subject, task.institution_id)
    if task.status != "open":
        raise Conflict("该随访已记录")
    errors = visit.check(reg.condition, data, clock.today_local())
    if errors:
        raise InvalidInput(fields=errors)
    assert data.done_on is not None
    previous = repository.last_done(db, reg.id)
    before = previous.classification if previous else None
    cls = classify_visit(reg.condition, data, before)
    task.status, task.done_on, task.done_at, task.recorded_by_user_id = "done", data.done_on, clock.now(), subject.user_id
    task.sbp, task.dbp, task.fasting_glucose, task.classification = data.sbp, data.dbp, data.fasting_glucose, cls
    task.visit_class = cls if reg.condition in ("smi", "tb") else visit_class(
        reg.condition, data.sbp, data.dbp, data.fasting_glucose, adverse=data.adverse, complication=data.complication)
    task.visit_mode, task.heart_rate, task.hba1c = data.visit_mode, data.heart_rate, data.hba1c
    task.weight_kg, task.height_cm, task.bmi = data.weight_kg, data.height_cm, data.bmi
    task.adherence, task.adverse, task.detail = data.adherence, data.adverse, data.detail()
    task.referral_reason = data.referral_reason
    task.note = (data.note or "").strip() or None
    due, reason = rules.next_visit(reg.condition, cls, data.done_on, previous=before, tb_phase=reg.tb_phase)
    nxt = _plan(db, reg, due, reason)
    alarms.raise_for_visit(db, task, reg)
    audit.record(db, subject, "complete", "chronic_follow_up", task.id, patient_id=task.patient_id,
                 detail={"classification": cls, "next_id": nxt.id, "next_due_on": due.isoformat()})
    return nxt


@dataclass
class DueRow:
    task: ChronicFollowUp
    registration: ChronicRegistration
    patient: Patient
    days_overdue: int


@dataclass
class DueList:
    rows: list[DueRow]
    overdue: int
    today: int
    upcoming: int


def due_list(db: Session, subject: Subject, team_id: int, horizon_days: int = 7) -> DueList:
    """The team's open follow-ups due within `horizon_days`, with the counts overdue, due today, upcoming."""
    require_team(db, subject, team_id)
    today = clock.today_local()
    rows = [DueRow(f, r, p, (today - f.due_on).days)
            for f, r, p in repository.open_follow_ups(db, subject, team_id, today + timedelta(days=horizon_days))]
    return DueList(rows, overdue=sum(1 for r in rows if r.days_overdue > 0),
                   today=sum(1 for r in rows if r.days_overdue == 0),
                   upcoming=sum(1 for r in rows if r.days_overdue < 0))


def due_count(db: Session, subject: Subject) -> int:
    """The workbench's count: the institution's chronic follow-ups due today or overdue."""
    return repository.count_due(db, subject, clock.today_local())
