"""Screening and outreach (筛查, 下乡巡诊): a team's round in its villages records blood pressure and glucose for the
residents it sees, flags abnormal readings and turns each into a suggestion for the responsible doctor — enrol in
the hypertension or diabetes registry, or refer at once — who enrols, refers or dismisses it. The coverage list
names, per village, the residents 35 and over whose blood pressure nobody measured this year (BP for everyone
35+ at least once a year; the hypertension registry's patients are measured at every follow-up).

Thresholds are the follow-up rules' (chronic/rules.py, settings with the national defaults): SBP ≥ 180 or
DBP ≥ 110, glucose ≥ 16.7 or ≤ 3.9 mmol/L urgent; SBP ≥ 140 or DBP ≥ 90 raised blood pressure; fasting glucose
≥ 7.0 mmol/L raised glucose."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.policy import require_patient
from yilianti.authz.subject import Subject
from yilianti.chronic import registry, repository, rules, service, teams
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit.i18n import code_table
from yilianti.models.chronic_registry import ScreeningRecord, ScreeningRound
from yilianti.models.patient import Patient

KINDS = code_table("chronic.screening_kind", {"bp35": "35岁及以上居民血压筛查", "elderly65": "65岁及以上老年人健康体检",
                                              "glucose": "血糖筛查"})
FINDINGS = code_table("chronic.finding", {"normal": "正常", "raised_bp": "血压升高", "raised_glucose": "血糖升高",
                                          "raised_both": "血压、血糖均升高", "urgent": "危急，需紧急转诊"})
SUGGESTIONS = code_table("chronic.suggestion", {"enrol_hypertension": "建议纳入高血压管理",
                                                "enrol_diabetes": "建议纳入2型糖尿病管理",
                                                "enrol_both": "建议纳入高血压和2型糖尿病管理",
                                                "refer": "建议紧急转诊"})
OUTCOMES = code_table("chronic.screening_outcome", {"none": "无需处理", "pending": "待医生处理", "enrolled": "已纳入管理",
                                                    "referred": "已转诊", "dismissed": "医生已排除"})
SCREEN_AGE = 35


def finding(sbp: int | None, dbp: int | None, glucose: float | None) -> str:
    """normal | raised_bp | raised_glucose | raised_both | urgent, by the follow-up rules (chronic/rules.py)."""
    if rules.urgent_values("diabetes_t2", sbp, dbp, glucose):  # BP for everyone, glucose both ways
        return "urgent"
    bp = (sbp is not None or dbp is not None) and not rules.controlled("hypertension", sbp or 0, dbp or 0, None)
    glu = glucose is not None and not rules.controlled("diabetes_t2", None, None, glucose)
    return "raised_both" if bp and glu else "raised_bp" if bp else "raised_glucose" if glu else "normal"


def suggestion(found: str, registered: set[str]) -> str | None:
    """What the doctor is asked to decide: a registry the patient is not yet in, or an urgent referral."""
    if found == "urgent":
        return "refer"
    wants = {"raised_bp": {"hypertension"}, "raised_glucose": {"diabetes_t2"},
             "raised_both": {"hypertension", "diabetes_t2"}}.get(found, set()) - registered
    if wants == {"hypertension", "diabetes_t2"}:
        return "enrol_both"
    return {frozenset({"hypertension"}): "enrol_hypertension",
            frozenset({"diabetes_t2"}): "enrol_diabetes"}.get(frozenset(wants))


def _staff(subject: Subject) -> int:
    inst = subject.acting_institution_id
    if inst is None or not subject.is_clinical:
        raise Forbidden()
    service._require_staff(subject, inst)
    return inst


def create_round(db: Session, subject: Subject, kind: str, held_on: date | None, team_id: int | None,
                 village: str | None) -> ScreeningRound:
    inst = _staff(subject)
    errors: dict[str, str] = {}
    if kind not in KINDS:
        errors["kind"] = "请选择筛查类型"
    if held_on is None:
        errors["held_on"] = "请填写筛查日期"
    elif held_on > clock.today_local():
        errors["held_on"] = "筛查日期不能晚于今天"
    if errors:
        raise InvalidInput(fields=errors)
    assert held_on is not None
    if team_id is not None:
        service.require_team(db, subject, team_id)
    r = ScreeningRound(institution_id=inst, team_id=team_id, kind=kind, held_on=held_on, status="open",
                       village=(village or "").strip()[:100] or None, created_by_user_id=subject.user_id)
    db.add(r)
    db.flush()
    audit.record(db, subject, "create", "chronic_screening_round", r.id, detail={"kind": kind, "team_id": team_id})
    return r


def require_round(db: Session, subject: Subject, round_id: int) -> ScreeningRound:
    r = repository.screening_round(db, round_id)
    if r is None or r.institution_id != subject.acting_institution_id or not subject.is_clinical:
        raise NotFound()
    return r


@dataclass
class ReadingIn:
    patient_id: int | None
    sbp: int | None = None
    dbp: int | None = None
    fasting_glucose: float | None = None
    measured_on: date | None = None
    errors: dict[str, str] = field(default_factory=dict)


def record(db: Session, subject: Subject, round_id: int, data: ReadingIn) -> ScreeningRecord:
    """One resident's readings in the round, flagged, with the suggestion for the responsible doctor."""
    r = require_round(db, subject, round_id)
    _staff(subject)
    if r.status != "open":
        raise Conflict("本次筛查已结束")
    errors = dict(data.errors)
    if data.patient_id is None:
        errors["patient_id"] = "请选择居民"
    day = data.measured_on or r.held_on
    if day > clock.today_local():
        errors["measured_on"] = "测量日期不能晚于今天"
    if data.sbp is not None and not 50 <= data.sbp <= 300:
        errors["sbp"] = "应在 50–300 mmHg 之间"
    if data.dbp is not None and not 30 <= data.dbp <= 200:
        errors["dbp"] = "应在 30–200 mmHg 之间"
    if data.fasting_glucose is not None and not 1.0 <= data.fasting_glucose <= 40.0:
        errors["fasting_glucose"] = "应在 1.0–40.0 mmol/L 之间"
    if r.kind in ("bp35", "elderly65") and (data.sbp is None or data.dbp is None):
        errors.setdefault("sbp", "请记录收缩压和舒张压")
    if r.kind == "glucose" and data.fasting_glucose is None:
        errors.setdefault("fasting_glucose", "请记录空腹血糖")
    if errors:
        raise InvalidInput(fields=errors)
    assert data.patient_id is not None
    require_patient(db, subject, data.patient_id, action="screen", resource_type="chronic_screening_round",
                    resource_id=r.id)
    if repository.screened_in_round(db, r.id, data.patient_id) is not None:
        raise Conflict("该居民已在本次筛查中记录")
    found = finding(data.sbp, data.dbp, data.fasting_glucose)
    registered = {c for c in service.CONDITIONS if repository.registration_under_care(db, data.patient_id, c)}
    suggested = suggestion(found, registered)
    rec = ScreeningRecord(round_id=r.id, patient_id=data.patient_id, measured_on=day, sbp=data.sbp, dbp=data.dbp,
                          fasting_glucose=data.fasting_glucose, finding=found, suggestion=suggested,
                          outcome="pending" if suggested else "none", recorded_by_user_id=subject.user_id)
    db.add(rec)
    db.flush()
    audit.record(db, subject, "create", "chronic_screening_record", rec.id, patient_id=data.patient_id,
                 detail={"finding": found, "suggestion": suggested})
    return rec


ACTIONS = ("enrol", "refer", "dismiss")


def decide(db: Session, subject: Subject, record_id: int, action: str, note: str | None = None) -> ScreeningRecord:
    """The responsible doctor's decision on a suggestion: enrol (in the registries it names, with the round's
    team), refer (the referral form follows, prefilled), or dismiss with a note."""
    rec = repository.screening_record(db, record_id)
    if rec is None:
        raise NotFound()
    r = require_round(db, subject, rec.round_id)
    _staff(subject)
    if action not in ACTIONS:
        raise InvalidInput(fields={"action": "无效的处理方式"})
    if rec.outcome != "pending":
        raise Conflict("该筛查结果已处理")
    if action == "dismiss" and not (note or "").strip():
        raise InvalidInput(fields={"note": "请说明排除的理由（如复测正常）"})
    if action == "enrol":
        conditions = {"enrol_hypertension": ["hypertension"], "enrol_diabetes": ["diabetes_t2"],
                      "enrol_both": ["hypertension", "diabetes_t2"]}.get(rec.suggestion or "", [])
        if not conditions:
            raise Conflict("该结果建议转诊，不是纳入管理")
        for condition in conditions:
            registry.enrol(db, subject, registry.EnrolIn(patient_id=rec.patient_id, condition=condition,
                                                         team_id=r.team_id))
    rec.outcome = {"enrol": "enrolled", "refer": "referred", "dismiss": "dismissed"}[action]
    rec.handled_by_user_id, rec.handled_at = subject.user_id, clock.now()
    db.flush()
    audit.record(db, subject, "decide", "chronic_screening_record", rec.id, patient_id=rec.patient_id,
                 reason=(note or "").strip() or None, detail={"action": action})
    return rec


def referral_prefill(rec: ScreeningRecord) -> dict[str, str]:
    """The referral form's prefilled fields for a screening result the doctor refers: urgent when the readings
    are past the urgent thresholds, the reason and the readings as key results (the doctor reviews them)."""
    values = "；".join(v for v in (f"血压 {rec.sbp}/{rec.dbp} mmHg" if rec.sbp is not None else "",
                                  f"空腹血糖 {rec.fasting_glucose:g} mmol/L" if rec.fasting_glucose is not None else "")
                       if v)
    return {"patient_id": str(rec.patient_id), "direction": "up",
            "priority": "urgent" if rec.finding == "urgent" else "routine",
            "reason": f"{rec.measured_on} 筛查发现{FINDINGS.get(rec.finding, '')}：{values}，请上级医院诊治",
            "key_results": f"{rec.measured_on} 筛查：{values}"}


@dataclass
class VillageCoverage:
    village: str
    residents: int  # of the age (35+ for BP, 65+ for the health check), of the institution, living in the village
    screened: int
    unscreened: list[Patient]  # the first of those not screened this year, by name

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.screened / self.residents, 1) if self.residents else None


COVERAGE = code_table("chronic.coverage", {"bp35": "35岁及以上居民年度血压测量", "elderly65": "65岁及以上老年人年度健康体检"})


def coverage(db: Session, subject: Subject, year: int | None = None, limit: int = 200, *,
             kind: str = "bp35") -> list[VillageCoverage]:
    """Per village the institution's teams serve, this year: `bp35` residents 35+ whose BP was measured (or who
    are in the hypertension registry); `elderly65` residents 65+ who had the annual health check (老年人健康
    管理率: a 65+ health-check round saw them) — and the first `limit` of those who did not, by name."""
    inst = _staff(subject)
    today = clock.today_local()
    year = year or today.year
    day = today if year == today.year else date(year, 12, 31)
    age, seen = ((teams.ELDERLY_AGE, repository.elderly_checked_since) if kind == "elderly65"
                 else (SCREEN_AGE, repository.bp_screened_since))
    born_by = teams.born_by(day, age)
    people = [(pid, addr or "") for pid, birth, addr in repository.residents(db, inst) if birth and birth <= born_by]
    screened = seen(db, inst, date(year, 1, 1))
    out = []
    names = dict.fromkeys(v for t in repository.teams_of(db, inst) for v in teams.villages(t.village))
    for village in names:
        here = [pid for pid, addr in people if village in addr]
        missing = [pid for pid in here if pid not in screened]
        out.append(VillageCoverage(village, len(here), len(here) - len(missing),
                                   repository.patients_named(db, subject, missing, limit)))
    return out
