"""The national thresholds of chronic care (国家基本公共卫生服务规范 第三版), in one place: the values that call
for an urgent referral and the values of a controlled patient (settings `chronic_urgent_*`, `chronic_target_*`
with the national defaults). Visits (`service.classify`), lab results and
readings (`alarms`) and the outcome measures (`outcomes`) are all judged by these functions.
"""

from __future__ import annotations

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
