"""What the review queue shows a reviewer: a pair's match probability, its per-field reasons in Chinese
(translated by the catalogue like every page string), and the two records' differing characters marked.

The stored explanation is a dict of numbers (fs.Scorer.explain: per field its weight in log2 odds and
`<field>_level`, an index into fs.LEVELS; `name_one_in`; `probability`); pairs queued by rules before v5
hold the weights only, shown as agreeing or disagreeing.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from markupsafe import Markup, escape

from yilianti.empi import fs

FIELD_LABELS = {"name": "姓名", "birth_date": "出生日期", "sex": "性别", "phone": "电话", "address": "住址",
                "resident_id": "身份证号"}

# fs.LEVELS in Chinese, index for index
LEVEL_LABELS: dict[str, tuple[str, ...]] = {
    "name": ("姓名相同", "读音相同（同音字）", "名字多一字或少一字", "名相同、姓不同", "姓相同、名有一字不同",
             "姓相同、名不同", "姓名不同"),
    "birth_date": ("相同", "相差一天或一位数字", "月日颠倒", "年份相差一年", "不同"),
    "sex": ("相同", "不同"),
    "phone": ("相同", "不同"),
    "address": ("县以下地址相同", "县以下地址相近", "同一地区", "不同"),
    "resident_id": ("号码相同但校验位不符", "号码相近（录错、颠倒或 15/18 位）", "不同"),
}
TWO_VALID_IDS = "两个不同的有效身份证号"
WHOLE_BELOW = 0.4  # similarity (difflib ratio) under which two values are marked whole


@dataclass(frozen=True)
class Reason:
    field: str
    label: str          # the field, in Chinese
    level: str          # how it compared, in Chinese
    weight: float       # how much it counted (log2 odds; + for, - against)
    one_in: int | None = None  # the name: one person in so many has it (born the same year)

    @property
    def agrees(self) -> bool:
        return self.weight > 0


def probability(c: Any) -> float | None:
    """The pair's match probability (0–1): stored by rules v5, else from a v5 score; None for older rules."""
    p = (c.explanation or {}).get("probability")
    if p is not None:
        return float(p)
    return fs.probability(c.score) if c.rules_version == "v5" else None


def reasons(explanation: dict[str, Any]) -> list[Reason]:
    """Per compared field, in the form's order: how it compared and how much it counted."""
    out = []
    for f in fs.FIELDS:
        w = explanation.get(f)
        if w is None:
            continue
        lv = explanation.get(f"{f}_level")
        if lv is None:
            level = "一致" if w > 0 else ("不一致" if w < 0 else "无影响")
        elif int(lv) == -1:
            level = TWO_VALID_IDS
        else:
            labels = LEVEL_LABELS[f]
            level = labels[int(lv)] if 0 <= int(lv) < len(labels) else "不一致"
        one_in = explanation.get("name_one_in") if f == "name" else None
        out.append(Reason(f, FIELD_LABELS[f], level, float(w), int(one_in) if one_in else None))
    return out


def strongest(explanation: dict[str, Any], n: int = 3) -> list[Reason]:
    """The reasons that counted most either way (the list's summary of a pair)."""
    return sorted(reasons(explanation), key=lambda r: -abs(r.weight))[:n]


def diff(a: str, b: str) -> tuple[Markup, Markup]:
    """Both strings, escaped, with the characters that differ from the other wrapped in <mark>; two values with
    little in common (another address) are marked whole rather than as a scatter of chance matches."""
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    if a and b and matcher.ratio() < WHOLE_BELOW:
        return Markup(f"<mark>{escape(a)}</mark>"), Markup(f"<mark>{escape(b)}</mark>")
    out_a: list[str] = []
    out_b: list[str] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        x, y = str(escape(a[i1:i2])), str(escape(b[j1:j2]))
        if op == "equal":
            out_a.append(x)
            out_b.append(y)
            continue
        if x:
            out_a.append(f"<mark>{x}</mark>")
        if y:
            out_b.append(f"<mark>{y}</mark>")
    return Markup("".join(out_a)), Markup("".join(out_b))
