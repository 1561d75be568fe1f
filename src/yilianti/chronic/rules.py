"""The national thresholds of chronic care (国家基本公共卫生服务规范 第三版), in one place: the values that call
for an urgent referral and the values of a controlled patient. Visits (`service.classify`), lab results and
readings (`alarms`) and the outcome measures (`outcomes`) are all judged by these functions.
"""

from __future__ import annotations

# thresholds (mmHg, mmol/L)
URGENT_SBP, URGENT_DBP = 180, 110
TARGET_SBP, TARGET_DBP = 140, 90
URGENT_GLUCOSE_HIGH, URGENT_GLUCOSE_LOW = 16.7, 3.9
TARGET_GLUCOSE = 7.0


def urgent_values(condition: str, sbp: int | None, dbp: int | None, glucose: float | None) -> list[tuple[str, str]]:
    """The values past the urgent-referral thresholds, as (kind, text): SBP ≥ 180 or DBP ≥ 110 (every
    condition); for diabetes, glucose ≥ 16.7 or ≤ 3.9 mmol/L. Visits and lab results are checked by it."""
    out = []
    if (sbp is not None and sbp >= URGENT_SBP) or (dbp is not None and dbp >= URGENT_DBP):
        out.append(("bp_high", f"血压 {sbp if sbp is not None else '—'}/{dbp if dbp is not None else '—'} mmHg"))
    if condition == "diabetes_t2" and glucose is not None:
        if glucose >= URGENT_GLUCOSE_HIGH:
            out.append(("glucose_high", f"血糖 {glucose:g} mmol/L"))
        elif glucose <= URGENT_GLUCOSE_LOW:
            out.append(("glucose_low", f"血糖 {glucose:g} mmol/L"))
    return out


def controlled(condition: str, sbp: int | None, dbp: int | None, glucose: float | None) -> bool:
    """控制满意 by the values: diabetes fasting glucose < 7.0 mmol/L; hypertension BP < 140/90 mmHg."""
    if condition == "diabetes_t2" and glucose is not None:
        return glucose < TARGET_GLUCOSE
    return sbp is not None and dbp is not None and sbp < TARGET_SBP and dbp < TARGET_DBP
