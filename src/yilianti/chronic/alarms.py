"""Chronic-care alarms (慢病预警): a value past the urgent-referral thresholds — from a follow-up visit, or a
lab result that arrived over HL7 for a patient in the diabetes registry — raises one alarm for the managing
institution's team: an urgent notification to the responsible doctor, a count on the workbench until someone
acknowledges it, escalation after `chronic_alarm_escalate_minutes` to the team's head by name (the whole
institution when the team has none), and a suggested
urgent up-referral whose form (the referral domain's own) arrives prefilled with the reason, the latest values
and the medication.

The thresholds are `chronic.service.urgent_values`, the same rule that classifies a visit as urgent. Lab
results are checked by a periodic job over the results stored since the last hours (`scan_labs`), so the
HL7 ingest paths (reference and PostgreSQL fast path) stay as they are; each alarm is raised once per source
(`source_key`: visit-<follow-up id>, lab-<observation id>, reading-<device reading id>, unique).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.policy import require_patient
from yilianti.authz.subject import Subject
from yilianti.chronic import repository
from yilianti.chronic.rules import urgent_values
from yilianti.config import get_settings
from yilianti.exceptions import Conflict, Forbidden, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.i18n import code_table, find_label
from yilianti.kit.listing import ListParams
from yilianti.models.chronic import ChronicAlarm, ChronicFollowUp, ChronicReading, ChronicRegistration
from yilianti.notifications.service import notify

KINDS = code_table("chronic.alarm_kind", {"bp_high": "血压达紧急转诊标准", "glucose_high": "血糖过高",
                                          "glucose_low": "血糖过低", "danger": "危急情况"})
SOURCES = code_table("chronic.alarm_source", {"visit": "随访", "lab": "检验结果", "device": "家用设备"})
STATES = code_table("chronic.alarm_state", {"open": "未确认", "acknowledged": "已确认"})
# glucose in a lab result: LOINC fasting glucose (1558-6, 14771-0), glucose in serum/plasma or blood
# (2345-7, 2339-0, 15074-8) and the local code most analysers send
GLUCOSE_CODES = ("1558-6", "14771-0", "2345-7", "2339-0", "15074-8", "GLU")
LAB_WINDOW_HOURS = 48
MG_DL_PER_MMOL_L = 18.0


def _raise(db: Session, reg: ChronicRegistration, *, key: str, source: str, kind: str, text: str,
           measured_at: datetime, responsible: int | None) -> ChronicAlarm | None:
    if repository.alarm_keys(db, [key]):
        return None
    alarm = ChronicAlarm(source_key=key, source=source, patient_id=reg.patient_id, registration_id=reg.id,
                         institution_id=reg.institution_id, team_id=reg.team_id, responsible_user_id=responsible,
                         kind=kind, value_text=text[:300], measured_at=measured_at)
    db.add(alarm)
    db.flush()
    patient = repository.patient_of(db, reg.patient_id)
    params = {"name": patient.name if patient else "", "value": alarm.value_text}
    notify(db, title="chronic.alarm.title", body="chronic.alarm.body", params=params,
           link=f"/chronic/alarms?status=open#alarm-{alarm.id}", user_id=responsible,
           institution_id=reg.institution_id if responsible is None else None, kind="chronic_alarm", urgent=True,
           dedupe_key=f"chronic-alarm-{alarm.id}")
    audit.record(db, None, "chronic.alarm", "chronic_alarm", alarm.id, patient_id=reg.patient_id, channel="system",
                 detail={"kind": kind, "value": alarm.value_text, "source": source})
    return alarm


def raise_for_visit(db: Session, task: ChronicFollowUp, reg: ChronicRegistration) -> ChronicAlarm | None:
    """The visit just recorded, if its values or danger signs call for an urgent referral."""
    found = urgent_values(reg.condition, task.sbp, task.dbp, task.fasting_glucose)
    danger = (task.detail or {}).get("danger") or []
    if task.classification == "unstable":  # a severe mental disorder's unstable visit: refer at once
        grade = (task.detail or {}).get("danger_grade")
        found.append(("danger", f"严重精神障碍病情不稳定（危险性 {grade} 级）"))
    if not found and not danger:
        return None
    kind, text = found[0] if found else ("danger", "")
    texts = [t for _, t in found] + (["危急情况"] if danger else [])
    return _raise(db, reg, key=f"visit-{task.id}", source="visit", kind=kind, text=text or "；".join(texts),
                  measured_at=task.done_at or clock.now(),
                  responsible=reg.responsible_user_id or task.recorded_by_user_id)


def raise_for_reading(db: Session, reading: ChronicReading, reg: ChronicRegistration) -> ChronicAlarm | None:
    """An uploaded device reading past the thresholds (glucose counts for the diabetes registry only)."""
    found = urgent_values(reg.condition, reading.sbp, reading.dbp, reading.glucose)
    if not found:
        return None
    kind, text = found[0]
    return _raise(db, reg, key=f"reading-{reading.id}", source="device", kind=kind,
                  text=f"{reading.device or '家用设备'} {text}", measured_at=reading.measured_at,
                  responsible=reg.responsible_user_id)


NUMBER = re.compile(r"^\s*[<>]?=?\s*(\d+(?:\.\d+)?)\s*$")


def glucose_mmol(value: str | None, units: str | None) -> float | None:
    """A glucose result in mmol/L (mg/dL divided by 18); None when the value is not a number."""
    match = NUMBER.match(value or "")
    if match is None:
        return None
    number = float(match.group(1))
    return round(number / MG_DL_PER_MMOL_L, 1) if (units or "").lower().replace(" ", "") == "mg/dl" else number


def scan_labs(db: Session) -> int:
    """Raise an alarm for each glucose result of a diabetes-registry patient past the thresholds, stored in
    the last `LAB_WINDOW_HOURS` hours and not yet alarmed. Returns how many were raised."""
    rows = repository.glucose_results_since(db, clock.now() - timedelta(hours=LAB_WINDOW_HOURS), GLUCOSE_CODES)
    seen = repository.alarm_keys(db, [f"lab-{o.id}" for o, _ in rows])
    raised = 0
    for obs, reg in rows:
        if f"lab-{obs.id}" in seen:
            continue
        mmol = glucose_mmol(obs.value, obs.units)
        found = urgent_values("diabetes_t2", None, None, mmol)
        if not found:
            continue
        kind, text = found[0]
        label = obs.name or obs.code
        if _raise(db, reg, key=f"lab-{obs.id}", source="lab", kind=kind, text=f"{label} {text}",
                  measured_at=obs.observed_at or obs.created_at, responsible=reg.responsible_user_id):
            raised += 1
    return raised


def visible(db: Session, subject: Subject, alarm_id: int) -> ChronicAlarm:
    alarm = repository.alarm(db, alarm_id)
    if alarm is None or alarm.institution_id != subject.acting_institution_id or not subject.is_clinical:
        raise NotFound()
    require_patient(db, subject, alarm.patient_id, resource_type="chronic_alarm", resource_id=alarm.id)
    return alarm


def acknowledge(db: Session, subject: Subject, alarm_id: int, note: str | None = None) -> ChronicAlarm:
    alarm = visible(db, subject, alarm_id)
    if not subject.has("doctor", "nurse"):
        raise Forbidden("只有本机构的医护人员可以确认慢病预警")
    if alarm.acknowledged_at is not None:
        raise Conflict("该预警已确认")
    alarm.acknowledged_at, alarm.acknowledged_by_user_id = clock.now(), subject.user_id
    alarm.ack_note = (note or "").strip()[:300] or None
    audit.record(db, subject, "acknowledge", "chronic_alarm", alarm.id, patient_id=alarm.patient_id,
                 detail={"minutes": int((alarm.acknowledged_at - alarm.created_at).total_seconds() // 60)})
    db.flush()
    return alarm


def escalation_target(db: Session, alarm: ChronicAlarm, heads: dict[int, int] | None = None) -> int | None:
    """Who an unacknowledged alarm goes to: the head (团队长) of the patient's team by name, unless the head is
    the responsible doctor who already has it or the team has none — then None: the whole institution. `heads`:
    the teams' heads already read (`repository.team_heads`) for a batch of alarms."""
    if alarm.team_id is None:
        return None
    head = heads.get(alarm.team_id) if heads is not None else repository.team_head(db, alarm.team_id)
    return head if head is not None and head != alarm.responsible_user_id else None


def escalate_overdue(db: Session) -> int:
    """Alarms nobody acknowledged within `chronic_alarm_escalate_minutes` go to `escalation_target`: the team
    head, named on the alarm, or every user of the institution. The periodic job `chronic.escalate_alarms`."""
    due = repository.unacknowledged_alarms(
        db, clock.now() - timedelta(minutes=get_settings().chronic_alarm_escalate_minutes))
    heads = repository.team_heads(db, {a.team_id for a in due if a.team_id is not None})
    names = repository.patient_names(db, {a.patient_id for a in due})
    for alarm in due:
        head = escalation_target(db, alarm, heads)
        alarm.escalated_at, alarm.escalated_to_user_id = clock.now(), head
        notify(db, title="chronic.alarm.escalated", body="chronic.alarm.body",
               params={"name": names.get(alarm.patient_id, ""), "value": alarm.value_text},
               link=f"/chronic/alarms?status=open#alarm-{alarm.id}", user_id=head,
               institution_id=alarm.institution_id if head is None else None,
               kind="chronic_alarm", urgent=True, dedupe_key=f"chronic-alarm-esc-{alarm.id}")
        audit.record(db, None, "chronic.alarm_escalated", "chronic_alarm", alarm.id, patient_id=alarm.patient_id,
                     channel="system", detail={"institution_id": alarm.institution_id, "to_user_id": head})
    db.flush()
    return len(due)


def referral_url(db: Session, alarm: ChronicAlarm) -> str:
    """The referral domain's new-referral form, prefilled: urgent, up, the patient, the reason with the alarm's
    values, the registry diagnosis, the latest visit's values and medication."""
    reg = repository.registration(db, alarm.registration_id)
    assert reg is not None
    last = repository.last_done(db, reg.id)
    condition = find_label("chronic.condition", reg.condition, "zh") or reg.condition
    # a lab result's alarm names the result; a visit's values are the visit line below
    results = [f"{clock.fmt_local(alarm.measured_at)} {alarm.value_text}"] if alarm.source != "visit" else []
    meds: list[str] = []
    if last is not None:
        values = [f"血压 {last.sbp}/{last.dbp} mmHg" if last.sbp is not None else "",
                  f"空腹血糖 {last.fasting_glucose:g} mmol/L" if last.fasting_glucose is not None else "",
                  f"糖化血红蛋白 {last.hba1c:g}%" if last.hba1c is not None else ""]
        results.append(f"{last.done_on} 随访：" + "，".join(v for v in values if v))
        meds = list((last.detail or {}).get("medications") or [])
    return "/referrals/new?" + urlencode({
        "direction": "up", "priority": "urgent", "patient_id": alarm.patient_id,
        "reason": f"{condition}患者{KINDS.get(alarm.kind, '')}：{alarm.value_text}，按规范紧急转诊",
        "diagnoses": f"{reg.icd10} {condition}", "key_results": "\n".join(results),
        "medications": "\n".join(meds)})


def open_count(db: Session, subject: Subject) -> int:
    """The workbench's count: the institution's unacknowledged alarms the subject may see — the rows of
    /chronic/alarms?status=open."""
    return kit.count(db, repository.alarms_statement(subject, ListParams(status="open")))
