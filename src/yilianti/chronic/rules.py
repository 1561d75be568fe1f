"""The national rules of chronic care (国家基本公共卫生服务规范 第三版), in one place: the values that call
for an urgent referral and the values of a controlled patient (settings `chronic_urgent_*`, `chronic_target_*`),
the classification of a severe mental disorder's and a tuberculosis patient's visit, and every registry's
interval to the next follow-up (`next_visit`), all settings with the national defaults. Visits
(`service.classify`), lab results and readings (`alarms`), the due dates behind the overdue list and the
workbench count, and the outcome measures (`outcomes`) are all judged by these functions.
"""

from __future__ import annotations

from datetime import date, timedelta

from yilianti.config import get_settings


def urgent_values(condition: str, sbp: int | None, dbp: int | None, glucose: float | None) -> list[tuple[str, str]]:
    """The values past the urgent-referral thresholds, as (kind, text): SBP ≥ 180 or DBP ≥ 110 (every
    condition); for diabetes, glucose ≥ 16.7 or ≤ 3.9 mmol/L. Visits and lab results are checked by it."""
    s = get_settings()
    out = []
    if (sbp is not None and sbp >= s.chronic_urgent_sbp) or (dbp is not None and dbp >= s.chronic_urgent_dbp):
        out.append(("bp_high", f"血压 {sbp if sbp is not None else '—'}/{dbp if dbp is not None else '—'} mmHg"))
    if condition == "diabetes_t2" and glucose is not None:
        if glucose >= s.chronic_urgent_glucose_high:
            out.append(("glucose_high", f"血糖 {glucose:g} mmol/L"))
        elif glucose <= s.chronic_urgent_glucose_low:
            out.append(("glucose_low", f"血糖 {glucose:g} mmol/L"))
    return out


def controlled(condition: str, sbp: int | None, dbp: int | None, glucose: float | None) -> bool:
    """控制满意 by the values: diabetes fasting glucose < 7.0 mmol/L; hypertension BP < 140/90 mmHg."""
    s = get_settings()
    if condition == "diabetes_t2" and glucose is not None:
        return glucose < s.chronic_target_glucose
    return sbp is not None and dbp is not None and sbp < s.chronic_target_sbp and dbp < s.chronic_target_dbp


def measured(condition: str, sbp: int | None, dbp: int | None, glucose: float | None) -> bool:
    """A visit with the values `controlled` judges by (a visit without them is 'visited, not measured')."""
    if condition == "diabetes_t2" and glucose is not None:
        return True
    return sbp is not None and dbp is not None


# ------------------------------------------------------------- severe mental disorders (严重精神障碍患者管理服务规范)
# A visit is 不稳定 with a danger grade of 3–5, no insight (自知力缺失), intolerable side effects or a serious
# physical illness: refer at once, see again within `chronic_recheck_days`. 基本稳定 with a danger grade of 1–2
# or any of symptoms, partial insight, a poor social function: observe two weeks (`chronic_recheck_days`); still
# basically stable the next time, see again a month later (`chronic_smi_guided_days`, under the specialist's
# guidance). 稳定 (grade 0, none of those): the next routine visit (`chronic_routine_days`; ≥ 4 visits a year).
SMI_REFER_GRADE = 3  # danger grade 3–5: unstable, refer at once
SMI_CLASSES = ("stable", "basically_stable", "unstable")


def smi_class(grade: int | None, *, symptoms: bool, insight: str | None, social_poor: bool,
              adverse: str | None, physical: bool) -> str:
    """stable | basically_stable | unstable by the national rules above (`grade` the 危险性评估 0–5)."""
    if (grade or 0) >= SMI_REFER_GRADE or insight == "absent" or adverse == "severe" or physical:
        return "unstable"
    if (grade or 0) >= 1 or symptoms or insight == "partial" or social_poor or adverse == "present":
        return "basically_stable"
    return "stable"


# --------------------------------------------------------------------- tuberculosis (肺结核患者健康管理服务规范)
# Visits every `chronic_tb_intensive_days` (10) in the intensive phase and `chronic_tb_continuation_days` (30)
# in the continuation phase; side effects or a complication: refer at once, follow up within
# `chronic_recheck_days`; doses missed: health education, and `chronic_tb_missed_doses_report` (7) or more
# missed since the last visit are reported to the TB institution. At the end of treatment a closing assessment:
# 规则服药 when at least `TB_REGULAR_RATE` of the doses due were taken.
TB_CLASSES = ("adherent", "missed", "missed_report")
TB_REGULAR_RATE = 0.9


def tb_class(missed_doses: int | None, *, adverse: str | None, complication: bool) -> str:
    """adherent | missed | missed_report | refer."""
    if complication or adverse in ("present", "severe"):
        return "refer"
    if missed_doses and missed_doses >= get_settings().chronic_tb_missed_doses_report:
        return "missed_report"
    return "missed" if missed_doses else "adherent"


def tb_interval_days(phase: str | None) -> int:
    """Days to the next TB visit in a treatment phase (intensive: 10; continuation: 30)."""
    s = get_settings()
    return s.chronic_tb_continuation_days if phase == "continuation" else s.chronic_tb_intensive_days


def next_visit(condition: str, classification: str, visited_on: date, *, previous: str | None = None,
               tb_phase: str | None = None) -> tuple[date, str]:
    """The next follow-up's date and reason after a visit so classified — every registry's intervals here:
    hypertension and diabetes (controlled: routine; uncontrolled: re-check; refer/urgent: after referral),
    SMI and TB by the rules above."""
    s = get_settings()
    if condition == "tb" and classification != "refer":
        return visited_on + timedelta(days=tb_interval_days(tb_phase)), "routine"
    if classification in ("controlled", "stable"):
        return visited_on + timedelta(days=s.chronic_routine_days), "routine"
    if classification == "basically_stable" and previous in ("basically_stable", "unstable"):
        return visited_on + timedelta(days=s.chronic_smi_guided_days), "guided"
    if classification in ("uncontrolled", "basically_stable"):
        return visited_on + timedelta(days=s.chronic_recheck_days), "recheck"
    return visited_on + timedelta(days=s.chronic_recheck_days), "after_referral"


def first_visit_soon(condition: str, enrolled_on: date, *, notified_on: date | None,
                     grade: str | None) -> date | None:
    """An enrolment's first follow-up sooner than the usual `chronic_first_follow_up_days`: a TB notification's
    home visit within `chronic_tb_first_visit_days` (72 h); an SMI patient of grade 3–5 within two weeks."""
    s = get_settings()
    if notified_on is not None:
        return notified_on + timedelta(days=s.chronic_tb_first_visit_days)
    if condition == "smi" and grade and grade.isdigit() and int(grade) >= SMI_REFER_GRADE:
        return enrolled_on + timedelta(days=min(s.chronic_recheck_days, s.chronic_first_follow_up_days))
    return None
