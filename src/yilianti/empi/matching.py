"""Matching rules: versioned data (weights and thresholds) and the pair score.

Fellegi–Sunter-like: each field comparison adds a log2 likelihood-ratio weight (m/u);
the sum is compared with two thresholds (auto-link above, review between, new person below).
A valid resident ID is deterministic: equal → same person; two different valid IDs →
never the same person (hard negative), whatever the other fields say.

Versions (each link records the version that made it: `patient_record.rules_version`,
`match_candidate.rules_version`, the batch linker's summary and `--links` file):
- v1: the weights below.
- v2: v1's weights, and a pair may auto-link only with a *supporting field* —
  the same phone (a child's record carries the guardian's phone), an address at least
  `address_mid_at` alike, or the same ID-shaped value failing its check. Name + birth date
  (+ sex) alone, however rare the name, stays below the auto-link threshold: review online,
  not linked in batch. (v1 auto-linked two different people with a rare identical name and
  birth date in the 1 M batch run.)
- v3: v2, and when the two birth dates differ (a one-digit typo or a day/month swap) an
  address supports the pair only if nearly the same (bigram Jaccard ≥ `inexact_birth_address_at`,
  0.75): two addresses in one town share a long county + town prefix and reach v2's 0.45. A phone
  or a failing-check ID value still supports. (v2 linked 罗明轩 1947-03-29 to another 罗明轩
  1947-03-20, no phone, both in 蒋辛屯镇, in the B6 online run; batch at 100k: 4 → 0 false pairs,
  recall 0.9236 → 0.9234.)
- v4: v3, and the supporting address is compared below the county.
- v5 (current, issue 17): a Fellegi–Sunter model whose m/u probabilities are estimated from the data
  (u from random pairs, m by EM over the candidate pairs, no labels), names weighed by their frequency
  in the index, near-equal IDs as evidence; thresholds in match probability; one scoring (empi/fs.py)
  for batch and online; weights in weights_v5.json / `yilianti empi train`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from rapidfuzz.distance import Levenshtein

from yilianti.empi.normalise import Record
from yilianti.kit.validate import is_han

HARD_NEGATIVE = -1000.0

# The most frequent full names in China (public name statistics): their exact agreement is weak
# evidence even when a small file holds only a few of them.
COMMON_NAMES = frozenset([
    "王伟", "张伟", "王芳", "李伟", "李娜", "张敏", "李静", "王静", "刘伟", "王秀英", "张丽", "李秀英", "王丽", "张静", "张秀英", "李强",
    "王敏", "李敏", "王磊", "刘洋", "王艳", "王勇", "李军", "张勇", "李杰", "张杰", "张磊", "王强", "李娟", "王军", "张艳", "张涛",
    "王涛", "李艳", "王超", "李明", "李勇", "王娟", "刘杰", "刘敏", "李霞", "李丽", "张军", "王杰", "张强", "王秀兰", "王刚", "王平",
    "刘芳", "张燕", "李燕", "刘静", "张丹", "王鹏", "李平", "王霞", "李刚", "王辉", "张婷", "李红"
])


@dataclass(frozen=True)
class Rules:
    version: str = "v1"
    # name
    name_exact_min: float = 7.0        # exact name, frequency-adjusted between min and max
    name_exact_max: float = 14.0
    name_exact_m: float = 0.95
    name_reference_n: int = 100_000    # small files use this as the population size
    common_name_u: float = 0.002       # floor of the agreement frequency u for COMMON_NAMES
    name_homophone: float = 6.0        # same toneless pinyin, different characters
    name_surname_only: float = -10.0   # same surname, clearly different given name (twins, siblings)
    name_different: float = -12.0
    name_latin_close: float = 3.0      # Latin names, one edit apart
    # birth date
    birth_exact: float = 6.0
    birth_swap: float = 3.0            # day and month swapped
    birth_one_digit: float = 2.0       # one digit differs (typo)
    birth_different: float = -8.0
    # sex
    sex_agree: float = 0.5
    sex_disagree: float = -4.0
    # phone (guardians' phones are shared by siblings: moderate weight)
    phone_agree: float = 4.0
    phone_disagree: float = -0.5
    # address (character-bigram Jaccard)
    address_high: float = 2.0          # ≥ address_high_at
    address_high_at: float = 0.75
    address_mid: float = 1.0           # ≥ address_mid_at
    address_mid_at: float = 0.45
    address_low: float = -1.0          # < address_low_at
    address_low_at: float = 0.15
    # an ID-shaped value failing validation equal on both sides is weak evidence
    weak_id_agree: float = 4.0
    # v2: auto-link needs a supporting field (phone, address, weak ID) besides name + birth date
    require_support: bool = False
    # v3: when the birth dates differ (a typo or a day/month swap), an address supports only from this
    # bigram Jaccard on (a long shared county/town prefix is not the same address); None: address_mid_at
    inexact_birth_address_at: float | None = None
    # v4: the supporting address is compared below the county (Record.addr_local), not as a whole
    local_address_support: bool = False
    # thresholds
    auto_link: float = 15.0
    review: float = 8.0
    # blocking
    max_block: int = 60                # larger blocks are compared with a sorted window
    window: int = 12
    # v5: a Fellegi–Sunter model estimated from the data (empi/fs.py); the thresholds are its own
    fellegi_sunter: bool = False
    model: Any = field(default=None, compare=False, hash=False, repr=False)


RULES_V1 = Rules()
RULES_V2 = Rules(version="v2", require_support=True)
RULES_V3 = Rules(version="v3", require_support=True, inexact_birth_address_at=0.75)
RULES_V4 = Rules(version="v4", require_support=True, inexact_birth_address_at=0.75, local_address_support=True)
RULES_V5 = Rules(version="v5", fellegi_sunter=True)  # thresholds and weights: fs.Model (weights_v5.json)
RULES_BY_VERSION = {r.version: r for r in (RULES_V1, RULES_V2, RULES_V3, RULES_V4, RULES_V5)}
CURRENT = RULES_V5  # new matching (online registration and batch) uses this version

# how far below the auto-link threshold v2 puts an unsupported pair (it stays in the review band)
UNSUPPORTED_MARGIN = 0.01


def with_model(rules: Rules, model: Any) -> Rules:
    """v5 rules bound to trained weights (`fs.Model`): thresholds are the model's."""
    return replace(rules, model=model, auto_link=model.auto_link, review=model.review)


def fs_rules(rules: Rules) -> Rules:
    """v5 rules with a model: the one given, else the weights online matching uses (fs.default_model)."""
    if rules.model is not None:
        return rules
    from yilianti.empi import fs
    return with_model(rules, fs.default_model())


def rules_for(version: str) -> Rules:
    """The rules of a recorded version (old links stay explainable by the rules that made them)."""
    try:
        return RULES_BY_VERSION[version]
    except KeyError:
        raise ValueError(f"unknown rules version {version!r} (known: {', '.join(RULES_BY_VERSION)})") from None


def name_exact_weight(rules: Rules, count: int, n_records: int, name: str = "", common: bool = False) -> float:
    """Term-frequency adjusted weight for an exact name agreement (王伟 weighs less than a rare name)."""
    u = max(count, 1) / max(n_records, rules.name_reference_n)
    if common or name in COMMON_NAMES:
        u = max(u, rules.common_name_u)
    w = math.log2(rules.name_exact_m / u)
    return min(max(w, rules.name_exact_min), rules.name_exact_max)


def _birth(rules: Rules, a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if a == b:
        return rules.birth_exact
    if a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6]:
        return rules.birth_swap
    if sum(1 for x, y in zip(a, b, strict=True) if x != y) == 1:
        return rules.birth_one_digit
    return rules.birth_different


def _name(rules: Rules, a: Record, b: Record, exact_weight: float) -> float:
    if not a.name or not b.name:
        return 0.0
    if a.name == b.name:
        return exact_weight
    if a.surname_py == b.surname_py and a.given_py == b.given_py and a.given_py:
        return rules.name_homophone
    if not is_han(a.name[0]) and Levenshtein.distance(a.name, b.name) <= 1:
        return rules.name_latin_close
    if a.surname_py == b.surname_py:
        return rules.name_surname_only
    return rules.name_different


def jaccard(x: frozenset[str], y: frozenset[str]) -> float:
    """Bigram-set similarity of two addresses (both non-empty)."""
    inter = len(x & y)
    return inter / (len(x) + len(y) - inter)


def supported(rules: Rules, a: Record, b: Record) -> bool:
    """A field besides name, birth date and sex agrees: phone (own or the guardian's), address,
    or an ID-shaped value failing its check. (Equal valid resident IDs never get here.)"""
    if a.phone and a.phone == b.phone:
        return True
    if a.rid_weak and a.rid_weak == b.rid_weak:
        return True
    x, y = (a.addr_local, b.addr_local) if rules.local_address_support else (a.addr, b.addr)
    if not (x and y):
        return False
    at = rules.address_mid_at
    if rules.inexact_birth_address_at is not None and a.birth and b.birth and a.birth != b.birth:
        at = rules.inexact_birth_address_at  # v3: a differing birth date needs (nearly) the same address
    return jaccard(x, y) >= at


def raw_score(rules: Rules, a: Record, b: Record, exact_name_weight: float) -> float:
    """The sum of the field weights, before v2's supporting-field cap."""
    if a.rid and b.rid:
        if a.rid != b.rid:
            return HARD_NEGATIVE
        return 100.0
    s = _name(rules, a, b, exact_name_weight)
    s += _birth(rules, a.birth, b.birth)
    if a.sex and b.sex:
        s += rules.sex_agree if a.sex == b.sex else rules.sex_disagree
    if a.phone and b.phone:
        s += rules.phone_agree if a.phone == b.phone else rules.phone_disagree
    if a.addr and b.addr:
        j = jaccard(a.addr, b.addr)
        if j >= rules.address_high_at:
            s += rules.address_high
        elif j >= rules.address_mid_at:
            s += rules.address_mid
        elif j < rules.address_low_at:
            s += rules.address_low
    if a.rid_weak and b.rid_weak and a.rid_weak == b.rid_weak:
        s += rules.weak_id_agree
    return s


def score(rules: Rules, a: Record, b: Record, exact_name_weight: float) -> float:
    s = raw_score(rules, a, b, exact_name_weight)
    if (rules.require_support and rules.auto_link <= s < 100.0 and not supported(rules, a, b)):
        return rules.auto_link - UNSUPPORTED_MARGIN
    return s


def explain(rules: Rules, a: Record, b: Record, exact_name_weight: float) -> dict[str, float]:
    """Per-field weights of one pair (for review screens and tests); `no_supporting_field` is the
    amount v2 took off a pair that reached auto-link on name + birth date alone."""
    out = {"name": _name(rules, a, b, exact_name_weight), "birth_date": _birth(rules, a.birth, b.birth)}
    raw = raw_score(rules, a, b, exact_name_weight)
    out["total"] = score(rules, a, b, exact_name_weight)
    if out["total"] != raw:
        out["no_supporting_field"] = round(out["total"] - raw, 2)
    return out
