"""The follow-up visit records of the national basic public-health forms (高血压患者随访服务记录表,
2型糖尿病患者随访服务记录表, 严重精神障碍患者随访服务记录表, 肺结核患者随访服务记录表): their code tables, the
ranges a value must fall in, and reading a submitted form (HTML or JSON alike) into a `VisitIn`.

What the values mean for the patient — this visit's classification and the next visit's date — is decided
in one place, `chronic.service.classify_visit` / `visit_class` and `chronic.rules.next_visit`; this module only
reads and checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from yilianti.kit.i18n import code_table

MODES = code_table("chronic.visit_mode", {"clinic": "门诊", "home": "家庭", "phone": "电话"})
SYMPTOMS = {
    "hypertension": code_table("chronic.symptom_htn", {
        "none": "无症状", "headache": "头痛头晕", "nausea": "恶心呕吐", "tinnitus": "眼花耳鸣", "dyspnoea": "呼吸困难",
        "palpitation": "心悸胸闷", "epistaxis": "鼻衄出血不止", "numbness": "四肢发麻", "oedema": "下肢水肿"}),
    "diabetes_t2": code_table("chronic.symptom_dm", {
        "none": "无症状", "polydipsia": "多饮", "polyphagia": "多食", "polyuria": "多尿", "blurred": "视力模糊",
        "infection": "感染", "numbness": "手脚麻木", "oedema": "下肢浮肿", "weight_loss": "体重明显下降"}),
    "smi": code_table("chronic.symptom_smi", {
        "none": "无症状", "hallucination": "幻觉", "communication": "交流困难", "suspicion": "猜疑",
        "mood": "喜怒无常", "odd": "行为怪异", "excited": "兴奋话多", "violence": "伤人毁物", "pessimism": "悲观厌世",
        "wandering": "无故外走", "soliloquy": "自语自笑", "withdrawn": "孤僻懒散"}),
    "tb": code_table("chronic.symptom_tb", {
        "none": "无症状", "cough": "咳嗽咳痰", "fever": "低热盗汗", "haemoptysis": "咯血或血痰", "chest": "胸痛消瘦",
        "nausea": "恶心纳差", "headache": "头痛失眠", "vision": "视物模糊", "rash": "皮肤瘙痒、皮疹",
        "hearing": "耳鸣、听力下降"}),
}
# the danger signs that make any visit an urgent referral (规范：须紧急转诊的情况)
DANGER = {
    "hypertension": code_table("chronic.danger_htn", {
        "consciousness": "意识改变", "severe_headache": "剧烈头痛或头晕", "vomiting": "恶心呕吐",
        "vision": "视力模糊、眼痛", "chest": "心悸、胸闷、心前区疼痛", "orthopnoea": "喘憋不能平卧",
        "pregnancy": "妊娠或哺乳期血压高于正常"}),
    "diabetes_t2": code_table("chronic.danger_dm", {
        "consciousness": "意识或行为改变", "acetone": "呼气有烂苹果样丙酮味", "sweating": "心悸、出汗",
        "vomiting": "食欲减退、恶心、呕吐、腹痛", "kussmaul": "深大呼吸、皮肤潮红", "tachycardia": "持续性心动过速（>100次/分）",
        "fever": "体温超过39℃", "vision": "视力骤降", "pregnancy": "妊娠或哺乳期血糖高于正常"}),
}
LEVELS = code_table("chronic.level", {"good": "良好", "fair": "一般", "poor": "差"})
SALT = code_table("chronic.salt", {"light": "轻", "medium": "中", "heavy": "重"})
ADHERENCE = code_table("chronic.adherence", {"regular": "规律", "intermittent": "间断", "none": "不服药"})
ADVERSE = code_table("chronic.adverse", {"none": "无", "present": "有", "severe": "有，难以耐受"})
HYPOGLYCAEMIA = code_table("chronic.hypoglycaemia", {"none": "无", "occasional": "偶尔", "frequent": "频繁"})
FOOT_PULSE = code_table("chronic.foot_pulse", {"normal": "触及正常", "weak": "减弱", "absent": "消失"})
VISIT_CLASSES = code_table("chronic.visit_class", {
    "controlled": "控制满意", "uncontrolled": "控制不满意", "adverse": "不良反应", "complication": "并发症",
    "stable": "稳定", "basically_stable": "基本稳定", "unstable": "不稳定",
    "adherent": "按时服药", "missed": "漏服药", "missed_report": "漏服药1周以上", "refer": "转诊"})
# severe mental disorders (严重精神障碍患者随访服务记录表)
INSIGHT = code_table("chronic.insight", {"complete": "自知力完全", "partial": "自知力不全", "absent": "自知力缺失"})
SOCIAL = code_table("chronic.social", {"self_care": "个人生活料理", "housework": "家务劳动", "work": "生产劳动及工作",
                                      "learning": "学习能力", "social": "社会人际交往"})
EFFECT = code_table("chronic.effect", {"cured": "痊愈", "improved": "好转", "unchanged": "无变化", "worse": "加重"})
# tuberculosis (肺结核患者随访服务记录表)
SUPERVISOR = code_table("chronic.supervisor", {"doctor": "医生", "family": "家属", "self": "自服药", "other": "其他"})
TB_STOP = code_table("chronic.tb_stop", {"cured": "治愈", "completed": "完成疗程", "failed": "治疗失败",
                                         "died": "死亡", "lost": "丢失",
                                         "mdr": "转入耐多药治疗"})

# name → (lowest, highest, unit) accepted on the form; outside the range a value is refused with the range
RANGES: dict[str, tuple[float, float, str]] = {
    "sbp": (50, 300, "mmHg"), "dbp": (30, 200, "mmHg"), "heart_rate": (20, 250, "次/分"),
    "weight_kg": (10, 300, "kg"), "height_cm": (50, 250, "cm"), "fasting_glucose": (1.0, 40.0, "mmol/L"),
    "hba1c": (3.0, 20.0, "%"), "smoking": (0, 100, "支/日"), "drinking": (0, 50, "两/日"),
    "exercise_times": (0, 21, "次/周"), "exercise_minutes": (0, 600, "分钟/次"), "staple_g": (0, 2000, "克/天"),
    "danger_grade": (0, 5, "级"), "treatment_month": (1, 36, "月"), "missed_doses": (0, 60, "次"),
}
LABELS = {"sbp": "收缩压", "dbp": "舒张压", "fasting_glucose": "血糖", "heart_rate": "心率", "weight_kg": "体重",
          "height_cm": "身高", "hba1c": "糖化血红蛋白"}
INTEGERS = ("sbp", "dbp", "heart_rate", "smoking", "exercise_times", "exercise_minutes", "staple_g", "danger_grade",
            "treatment_month", "missed_doses")
DECIMALS = ("weight_kg", "height_cm", "fasting_glucose", "hba1c", "drinking")
LIFESTYLE = ("smoking", "drinking", "exercise_times", "exercise_minutes", "staple_g", "salt", "mental", "compliance")
TEXTS = {"symptom_other": 200, "adverse_text": 200, "complication_text": 200, "referral_reason": 300,
         "referral_to": 200, "note": 1000}


@dataclass
class VisitIn:
    done_on: date | None = None
    sbp: int | None = None
    dbp: int | None = None
    fasting_glucose: float | None = None
    note: str | None = None
    visit_mode: str | None = None
    heart_rate: int | None = None
    weight_kg: float | None = None
    height_cm: float | None = None
    hba1c: float | None = None
    symptoms: list[str] = field(default_factory=list)
    symptom_other: str | None = None
    danger: list[str] = field(default_factory=list)
    lifestyle: dict[str, Any] = field(default_factory=dict)
    adherence: str | None = None
    adverse: str | None = None
    adverse_text: str | None = None
    hypoglycaemia: str | None = None
    foot_pulse: str | None = None
    complication: bool = False
    complication_text: str | None = None
    medications: list[str] = field(default_factory=list)
    referral_reason: str | None = None
    referral_to: str | None = None
    # severe mental disorders
    danger_grade: int | None = None
    insight: str | None = None
    social: dict[str, str] = field(default_factory=dict)  # each of SOCIAL → good | fair | poor
    sleep: str | None = None
    effect: str | None = None
    # tuberculosis
    treatment_month: int | None = None
    supervisor: str | None = None
    missed_doses: int | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def bmi(self) -> float | None:
        if self.weight_kg is None or not self.height_cm:
            return None
        return round(self.weight_kg / (self.height_cm / 100) ** 2, 1)

    def detail(self) -> dict[str, Any]:
        """What the visit row keeps beyond its typed columns."""
        out: dict[str, Any] = {"symptoms": self.symptoms, "danger": self.danger, "lifestyle": self.lifestyle,
                               "medications": self.medications}
        for name in ("symptom_other", "adverse_text", "hypoglycaemia", "foot_pulse", "complication_text",
                     "referral_to", "danger_grade", "insight", "social", "sleep", "effect", "treatment_month",
                     "supervisor", "missed_doses"):
            if getattr(self, name) or (getattr(self, name) == 0 and name in ("danger_grade", "missed_doses")):
                out[name] = getattr(self, name)
        if self.complication:
            out["complication"] = True
        return out


def _number(values: Mapping[str, Any], name: str, errors: dict[str, str]) -> float | None:
    raw = values.get(name)
    text = "" if raw is None else str(raw).strip()
    if not text:
        return None
    try:
        number = int(text) if name in INTEGERS else float(text)
    except ValueError:
        errors[name] = "请填写整数" if name in INTEGERS else "请填写数字"
        return None
    lo, hi, unit = RANGES[name]
    if not lo <= number <= hi:
        errors[name] = f"应在 {lo:g}–{hi:g} {unit} 之间"
        return None
    return number


def _code(values: Mapping[str, Any], name: str, table: Mapping[str, str], errors: dict[str, str]) -> str | None:
    text = str(values.get(name) or "").strip()
    if not text:
        return None
    if text not in table:
        errors[name] = "请从列表中选择"
        return None
    return text


def _codes(raw: Sequence[str], name: str, table: Mapping[str, str], errors: dict[str, str]) -> list[str]:
    picked = list(dict.fromkeys(c for c in (str(v).strip() for v in raw) if c))
    if any(c not in table for c in picked):
        errors[name] = "请从列表中选择"
        return [c for c in picked if c in table]
    return picked


def lines(text: str | Sequence[str] | None) -> list[str]:
    if text is None:
        return []
    items = text.replace("\r", "").split("\n") if isinstance(text, str) else [str(t) for t in text]
    return [line.strip()[:100] for line in items if line.strip()][:20]


def read(condition: str, values: Mapping[str, Any], lists: Mapping[str, Sequence[str]],
         done_on: date | None) -> VisitIn:
    """A submitted visit form: `values` the single fields (strings or numbers), `lists` the ticked boxes
    (symptoms, danger). Malformed or out-of-range values are left out and named in `errors`."""
    errors: dict[str, str] = {}
    nums = {n: _number(values, n, errors) for n in RANGES}
    lifestyle: dict[str, Any] = {n: nums[n] for n in LIFESTYLE if n in nums and nums[n] is not None}
    for name, table in (("salt", SALT), ("mental", LEVELS), ("compliance", LEVELS)):
        if (code := _code(values, name, table, errors)) is not None:
            lifestyle[name] = code
    texts = {n: (str(values.get(n) or "").strip()[:size] or None) for n, size in TEXTS.items()}
    symptoms_table = SYMPTOMS.get(condition, SYMPTOMS["hypertension"])
    symptoms = _codes(lists.get("symptoms", ()), "symptoms", symptoms_table, errors)
    if "none" in symptoms and len(symptoms) > 1:
        errors["symptoms"] = "已选“无症状”时不能再选其他症状"
    data = VisitIn(
        done_on=done_on, sbp=_int(nums["sbp"]), dbp=_int(nums["dbp"]), fasting_glucose=nums["fasting_glucose"],
        note=texts["note"], visit_mode=_code(values, "visit_mode", MODES, errors),
        heart_rate=_int(nums["heart_rate"]), weight_kg=nums["weight_kg"], height_cm=nums["height_cm"],
        hba1c=nums["hba1c"], symptoms=symptoms, symptom_other=texts["symptom_other"],
        danger=_codes(lists.get("danger", ()), "danger", DANGER.get(condition, {}), errors),
        lifestyle=lifestyle, adherence=_code(values, "adherence", ADHERENCE, errors),
        adverse=_code(values, "adverse", ADVERSE, errors), adverse_text=texts["adverse_text"],
        hypoglycaemia=_code(values, "hypoglycaemia", HYPOGLYCAEMIA, errors),
        foot_pulse=_code(values, "foot_pulse", FOOT_PULSE, errors),
        complication=str(values.get("complication") or "") in ("1", "true", "on", "True"),
        complication_text=texts["complication_text"], medications=lines(values.get("medications")),
        referral_reason=texts["referral_reason"], referral_to=texts["referral_to"],
        danger_grade=_int(nums["danger_grade"]), insight=_code(values, "insight", INSIGHT, errors),
        social={k: c for k in SOCIAL if (c := _code(values, f"social_{k}", LEVELS, errors)) is not None},
        sleep=_code(values, "sleep", LEVELS, errors), effect=_code(values, "effect", EFFECT, errors),
        treatment_month=_int(nums["treatment_month"]), supervisor=_code(values, "supervisor", SUPERVISOR, errors),
        missed_doses=_int(nums["missed_doses"]), errors=errors)
    return data


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def check(condition: str, data: VisitIn, today: date) -> dict[str, str]:
    """The errors of a visit as a whole (each value's own range was checked when it was read)."""
    errors = dict(data.errors)
    if data.done_on is None:
        errors.setdefault("done_on", "请填写随访日期")
    elif data.done_on > today:
        errors["done_on"] = "随访日期不能晚于今天"
    # a JSON client may send values the form reader never saw
    for name in ("sbp", "dbp", "fasting_glucose", "danger_grade", "treatment_month", "missed_doses"):
        value = getattr(data, name)
        lo, hi, unit = RANGES[name]
        if value is not None and not lo <= value <= hi:
            errors.setdefault(name, f"应在 {lo:g}–{hi:g} {unit} 之间")
    if data.sbp is not None and data.dbp is not None and data.dbp >= data.sbp:
        errors.setdefault("dbp", "舒张压应低于收缩压")
    if condition == "hypertension" and (data.sbp is None or data.dbp is None):
        errors.setdefault("sbp", "高血压随访须记录收缩压和舒张压")
    if condition == "diabetes_t2" and data.fasting_glucose is None:
        errors.setdefault("fasting_glucose", "糖尿病随访须记录空腹血糖")
    if condition == "smi" and data.danger_grade is None:
        errors.setdefault("danger_grade", "严重精神障碍随访须做危险性评估（0–5级）")
    if condition == "tb" and data.missed_doses is None:
        errors.setdefault("missed_doses", "肺结核随访须记录漏服药次数（无漏服填0）")
    if data.adverse in ("present", "severe") and not data.adverse_text:
        errors.setdefault("adverse_text", "请写明药物不良反应")
    if data.complication and not data.complication_text:
        errors.setdefault("complication_text", "请写明新发并发症")
    return errors
