"""Rules v5: a Fellegi–Sunter model whose weights are estimated from the records themselves.

Each field of a pair is compared at a *level* (name: same / homophone / a given-name character
added or dropped / same given name, other surname / same surname only / different; birth date:
same / a day or a digit off / day-month swap / year off by one / different; …). A level weighs
log2(m / u): m = P(level | same person), u = P(level | two different people).

- u from the data: two random records (sampled), the exact levels from the value frequencies
  (Σ f², no sampling noise);
- m by expectation maximisation over the blocked candidate pairs (no truth labels), as Splink;
- term-frequency adjustment of the names, from the index itself: an exact (or homophone) name
  weighs log2(m / f) with f the frequency of that name among the people born in the same year
  (王伟 born 1986 is common, 欧阳思齐 is not); a given-name variant with the same surname weighs
  by the surname's frequency, the same given name under another surname by the given name's;
- the prior: ρ matches per record among the candidates, log2(2ρ / N) for an index of N records,
  so one trained model serves a growing index.

A pair's score is its match weight (log2 odds); its probability is 1 / (1 + 2^-score).
Two different valid resident IDs never link (HARD_NEGATIVE). A name that is not the same
person's name (another given name: twins, siblings) or a birth date that is no typo of the other
(siblings given the same name) is no candidate: such a pair is capped just below the review
threshold, whatever the shared phone, address and surname add up to (families share them; the
model's independence assumption does not hold for them).

One implementation (`score`, `explain`) serves the batch linker and online registration.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from yilianti.empi.normalise import Record, split_name

HARD_NEGATIVE = -1000.0
GATE_MARGIN = 0.01
DEFAULT_PATH = Path(__file__).with_name("weights_v5.json")
WEIGHTS_ENV = "YILIANTI_EMPI_WEIGHTS"

LEVELS: dict[str, tuple[str, ...]] = {
    "name": ("same name", "same pinyin (homophone)", "given name: a character added or dropped",
             "same given name, another surname", "same surname, one given-name character differs",
             "same surname, another given name", "different"),
    "birth_date": ("same", "a day or one digit off", "day and month swapped", "year off by one",
                   "different"),
    "sex": ("same", "different"),
    "phone": ("same", "different"),
    "address": ("same below the county", "alike below the county", "same area", "different"),
    "resident_id": ("the same value failing its check", "nearly equal (typo, swap, 15/18 digits)",
                    "different"),
}
FIELDS = tuple(LEVELS)
NAME_AGREES = (0, 1, 2, 3)  # levels at which the name can be the same person's name
BIRTH_DIFFERENT = 4  # a birth date that is no typo of the other: siblings (of the same name, on one phone)
# EM would take families for one person (twins and siblings share a birth date or a phone, an address, a
# surname): a different given name is at most this likely for one person (a character mistyped, a new name)
NAME_M_CEILING = {4: 0.02, 5: 0.005, 6: 0.005}
M_FLOOR = 0.001
COMMON_NAME_FREQ = 0.001  # names at least this frequent are kept in the model (Model.name_freq)

# starting values for EM (m) and fallbacks (u)
_M0 = {"name": (0.8, 0.08, 0.03, 0.02, 0.02, 0.005, 0.005), "birth_date": (0.85, 0.05, 0.02, 0.02, 0.06),
       "sex": (0.97, 0.03), "phone": (0.6, 0.4), "address": (0.5, 0.15, 0.15, 0.2),
       "resident_id": (0.3, 0.5, 0.2)}
_U0 = {"name": (0.0005, 0.0002, 0.0005, 0.002, 0.002, 0.03, 0.9653), "birth_date": (4e-5, 2e-4, 1e-5, 1e-4, 0.99965),
       "sex": (0.5, 0.5), "phone": (1e-5, 0.99999), "address": (0.001, 0.005, 0.1, 0.894),
       "resident_id": (1e-6, 1e-5, 0.999989)}


@dataclass
class Model:
    version: str = "v5"
    m: dict[str, list[float]] = field(default_factory=lambda: {k: list(v) for k, v in _M0.items()})
    u: dict[str, list[float]] = field(default_factory=lambda: {k: list(v) for k, v in _U0.items()})
    rho: float = 0.5                       # matches per record among the candidate pairs
    surname_freq: dict[str, float] = field(default_factory=dict)   # pinyin surname → frequency
    given_freq: dict[str, float] = field(default_factory=dict)     # pinyin given name → frequency
    year_freq: dict[str, float] = field(default_factory=dict)      # birth year → frequency
    # the commonest full names (pinyin key "surname|given") at training: the floor of a name's frequency when
    # the index at hand is small or skewed (two 王伟 in a small file are still two of the commonest name)
    name_freq: dict[str, float] = field(default_factory=dict)
    min_freq: float = 1e-5                 # frequency of a value the tables do not hold
    reference_n: int = 100_000             # a smaller index counts as this many records (prior, name frequency):
    #                                        22 王伟 in a 31-record file are not rare, a name seen once there is not either
    auto_probability: float = 0.8          # auto-link at or above (chosen on seed-6 data, see docs/benchmarks.md B6)
    review_probability: float = 0.05       # review band [review, auto)
    review_max_fraction: float = 0.02      # batch: at most this many review pairs per record
    trained: dict[str, Any] = field(default_factory=dict)          # provenance (records, pairs, date)

    @property
    def auto_link(self) -> float:
        return _logit(self.auto_probability)

    @property
    def review(self) -> float:
        return _logit(self.review_probability)

    def weights(self) -> dict[str, list[float]]:
        return {f: [math.log2(max(m, 1e-9) / max(u, 1e-12)) for m, u in zip(self.m[f], self.u[f], strict=True)]
                for f in FIELDS}

    def to_json(self) -> str:
        d = {k: getattr(self, k) for k in ("version", "m", "u", "rho", "min_freq", "reference_n", "auto_probability",
                                            "review_probability", "review_max_fraction", "trained",
                                            "year_freq", "name_freq", "surname_freq", "given_freq")}
        return json.dumps(d, ensure_ascii=False, indent=1, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> Model:
        d = json.loads(text)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Model:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _logit(p: float) -> float:
    return math.log2(p / (1 - p))


def probability(score: float) -> float:
    if score <= HARD_NEGATIVE:
        return 0.0
    return 1 / (1 + 2 ** -score)


@lru_cache(maxsize=1)
def default_model() -> Model:
    """The weights online matching uses: `yilianti empi train --output FILE` and YILIANTI_EMPI_WEIGHTS=FILE,
    else the packaged weights_v5.json (trained on generated data)."""
    path = os.environ.get(WEIGHTS_ENV) or DEFAULT_PATH
    return Model.load(path) if Path(path).exists() else Model()


# ---- comparison levels ----------------------------------------------------------------------

def _added_or_dropped(x: str, y: str) -> bool:
    if len(x) > len(y):
        x, y = y, x
    if len(y) != len(x) + 1 or not x:
        return False
    return any(y[:k] + y[k + 1:] == x for k in range(len(y)))


def name_level(a: Record, b: Record) -> int | None:
    if not a.name or not b.name:
        return None
    if a.name == b.name:
        return 0
    if a.surname_py == b.surname_py and a.given_py == b.given_py and a.given_py:
        return 1
    sa, ga = _split(a)
    sb, gb = _split(b)
    if a.surname_py == b.surname_py and _added_or_dropped(ga, gb):
        return 2
    if ga and (ga == gb or a.given_py == b.given_py) and len(ga) >= 1 and sa != sb:
        return 3
    if a.surname_py == b.surname_py:
        return 4 if len(ga) == len(gb) >= 2 and sum(x != y for x, y in zip(ga, gb, strict=True)) == 1 else 5
    return 6


@lru_cache(maxsize=200_000)
def _split_name(name: str) -> tuple[str, str]:
    return split_name(name)


def _split(r: Record) -> tuple[str, str]:
    return _split_name(r.name)


@lru_cache(maxsize=100_000)
def _ordinal(d: str) -> int:
    try:
        return date(int(d[:4]), int(d[4:6]), int(d[6:8])).toordinal()
    except ValueError:
        return 0


def birth_level(a: str, b: str) -> int | None:
    if not a or not b:
        return None
    if a == b:
        return 0
    if a[4:] == b[4:] and (abs(int(a[:4]) - int(b[:4])) == 1 or sorted(a[:4]) == sorted(b[:4])):
        return 3
    if sum(1 for x, y in zip(a, b, strict=True) if x != y) == 1 or abs(_ordinal(a) - _ordinal(b)) == 1:
        return 1
    if a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6]:
        return 2
    return 4


def _jaccard(x: frozenset[str], y: frozenset[str]) -> float:
    inter = len(x & y)
    return inter / (len(x) + len(y) - inter)


def address_level(a: Record, b: Record) -> int | None:
    if not a.addr or not b.addr:
        return None
    if a.addr_local and b.addr_local:
        j = _jaccard(a.addr_local, b.addr_local)
        if j >= 0.75:
            return 0
        if j >= 0.45:
            return 1
    return 2 if _jaccard(a.addr, b.addr) >= 0.45 else 3


def _body(v: str) -> str:
    """The 17 digits before the check digit (a 15-digit legacy number: the 19 of the year inserted)."""
    if len(v) == 15:
        return v[:6] + "19" + v[6:]
    return v[:17]


def id_near(x: str, y: str) -> bool:
    """Nearly equal resident-ID values: one digit, two adjacent digits swapped, the year's digits
    misplaced, only the check digit, or a 15-digit legacy number beside its 18-digit form."""
    p, q = _body(x), _body(y)
    if len(p) != 17 or len(q) != 17:
        return False
    diffs = [k for k in range(17) if p[k] != q[k]]
    if len(diffs) <= 1:
        return True
    if len(diffs) == 2 and diffs[1] == diffs[0] + 1 and p[diffs[0]] == q[diffs[1]] and p[diffs[1]] == q[diffs[0]]:
        return True
    return all(6 <= k < 10 for k in diffs) and sorted(p[6:10]) == sorted(q[6:10])


def id_level(a: Record, b: Record) -> int | None:
    """None when either side has no ID value; -1 for two different valid IDs (never the same person)."""
    x, y = a.rid or a.rid_weak, b.rid or b.rid_weak
    if not x or not y:
        return None
    if a.rid and b.rid:
        return None if a.rid == b.rid else -1
    if a.rid_weak and a.rid_weak == b.rid_weak:
        return 0
    return 1 if id_near(x, y) else 2


def levels(a: Record, b: Record) -> tuple[int | None, ...]:
    return (name_level(a, b), birth_level(a.birth, b.birth),
            (0 if a.sex == b.sex else 1) if a.sex and b.sex else None,
            (0 if a.phone == b.phone else 1) if a.phone and b.phone else None,
            address_level(a, b), id_level(a, b))


# ---- the score ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class NameCounts:
    """How common the first record's name is among the *other* records of the index (the record itself not
    counted: a name seen once elsewhere is rare): records with its name key (pinyin), records with its name
    key and birth year; n = the index's records."""
    n: int
    name: int
    name_year: int


class Scorer:
    """A model's weights, ready to score pairs (weights computed once)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.w = model.weights()
        self.m = model.m
        self.auto_link = model.auto_link
        self.review = model.review

    def prior(self, n: int) -> float:
        return math.log2(2 * self.model.rho / max(n, self.model.reference_n, 2))

    def name_tf(self, level: int, a: Record, b: Record, c: NameCounts) -> tuple[float, float]:
        """(frequency used, its weight) of a term-frequency adjusted name level."""
        mod = self.model
        n = max(c.n, mod.reference_n, 1)
        if level in (0, 1):
            y = a.birth[:4]
            if y and b.birth[:4] == y:
                f = max(c.name_year, 1) / max(mod.year_freq.get(y, mod.min_freq) * n, 1.0)
            else:
                f = max(c.name, 1) / n
            f = max(f, mod.name_freq.get(f"{a.surname_py}|{a.given_py}", 0.0))
        elif level == 2:
            f = mod.surname_freq.get(a.surname_py, mod.min_freq)
        else:
            f = mod.given_freq.get(a.given_py, mod.min_freq)
        f = min(max(f, 1.0 / n, mod.min_freq), 1.0)
        return f, math.log2(max(self.m["name"][level], 1e-9) / f)

    def parts(self, a: Record, b: Record, c: NameCounts) -> tuple[float, list[tuple[str, int, float]], bool]:
        """(total weight, [(field, level, weight)], name agrees); total HARD_NEGATIVE for two valid IDs."""
        lv = levels(a, b)
        if lv[5] == -1:
            return HARD_NEGATIVE, [("resident_id", -1, HARD_NEGATIVE)], False
        total = self.prior(c.n)
        out: list[tuple[str, int, float]] = []
        for k, level in enumerate(lv):
            if level is None:
                continue
            f = FIELDS[k]
            w = self.name_tf(level, a, b, c)[1] if k == 0 and level in (0, 1, 2, 3) else self.w[f][level]
            total += w
            out.append((f, level, w))
        return total, out, lv[0] in NAME_AGREES and lv[1] != BIRTH_DIFFERENT

    def score(self, a: Record, b: Record, c: NameCounts) -> float:
        total, _parts, name_agrees = self.parts(a, b, c)
        if total >= self.review and not name_agrees and total > HARD_NEGATIVE:
            return self.review - GATE_MARGIN  # another given name or birth date: twins, siblings — not a candidate
        return total

    def explain(self, a: Record, b: Record, c: NameCounts) -> dict[str, float]:
        """What a reviewer reads, as numbers (the review queue stores and shows a dict of floats): per field
        how much it counted (log2 odds, the key is the field) and its level (`<field>_level`, an index into
        LEVELS), how rare the name is (`name_one_in`: one record in so many has it), the prior, the total and
        the match probability. `describe` turns it into sentences."""
        total, parts, name_agrees = self.parts(a, b, c)
        out: dict[str, float] = {"prior": round(self.prior(c.n), 2)}
        for f, level, w in parts:
            out[f] = round(w, 2)
            out[f"{f}_level"] = float(level)
            if f == "name" and level in (0, 1, 2, 3):
                out["name_one_in"] = float(max(1, round(1 / self.name_tf(level, a, b, c)[0])))
        final = self.score(a, b, c)
        if final != total:
            out["not_the_same_name_or_birth"] = round(final - total, 2)
        out["total"] = round(final, 2)
        out["probability"] = round(probability(final), 4)
        return out


def describe(explanation: dict[str, float]) -> list[str]:
    """A v5 explanation as sentences: "name: same name (1 in 3,214 born that year) +11.4", …"""
    lines = []
    for f in FIELDS:
        if f not in explanation:
            continue
        level = int(explanation.get(f"{f}_level", -1))
        label = LEVELS[f][level] if 0 <= level < len(LEVELS[f]) else "two different valid IDs"
        rare = f" (1 in {int(explanation['name_one_in']):,})" if f == "name" and "name_one_in" in explanation else ""
        lines.append(f"{f}: {label}{rare} {explanation[f]:+.1f}")
    lines.append(f"prior {explanation.get('prior', 0):+.1f}; total {explanation.get('total', 0):+.1f}, "
                 f"match probability {explanation.get('probability', 0):.1%}")
    return lines


_SCORERS: dict[int, tuple[Model, Scorer]] = {}


def scorer(model: Model) -> Scorer:
    """The model's Scorer, built once (online registration scores a few pairs at a time)."""
    hit = _SCORERS.get(id(model))
    if hit is None or hit[0] is not model:
        hit = _SCORERS[id(model)] = (model, Scorer(model))
    return hit[1]


# ---- training ----------------------------------------------------------------------------------

def _freq(values: Sequence[str]) -> dict[str, float]:
    c = Counter(v for v in values if v)
    n = sum(c.values()) or 1
    return {k: v / n for k, v in c.items()}


def estimate_u(recs: Sequence[Record], samples: int = 400_000, seed: int = 6) -> dict[str, list[float]]:
    """P(level | two random records): sampled pairs; the exact levels of name, birth date, phone
    from the value frequencies (Σ f²)."""
    n = len(recs)
    counts = {f: [0.0] * len(LEVELS[f]) for f in FIELDS}
    rnd = random.Random(seed)
    if n >= 2:
        for _ in range(samples):
            i, j = rnd.randrange(n), rnd.randrange(n)
            if i == j:
                continue
            for k, level in enumerate(levels(recs[i], recs[j])):
                if level is not None and level >= 0:
                    counts[FIELDS[k]][level] += 1
    u: dict[str, list[float]] = {}
    for f in FIELDS:
        tot = sum(counts[f])
        u[f] = [(c + 0.5) / (tot + 0.5 * len(counts[f])) if tot else u0 for c, u0 in zip(counts[f], _U0[f], strict=True)]

    def sq(values: Sequence[str]) -> float:
        return sum(v * v for v in _freq(values).values())

    exact = {"name": sq([r.name for r in recs]), "birth_date": sq([r.birth for r in recs]),
             "phone": sq([r.phone for r in recs])}
    exact_py = sq([f"{r.surname_py}|{r.given_py}" for r in recs if r.name])
    for f, v in exact.items():
        if v > 0:
            rest = 1 - u[f][0]
            u[f][0] = v
            scale = (1 - v) / rest if rest > 0 else 1
            u[f][1:] = [x * scale for x in u[f][1:]]
    if exact_py > exact["name"]:
        u["name"][1] = max(exact_py - exact["name"], 1e-7)
    return u


def em(patterns: Counter[tuple[int | None, ...]], m0: dict[str, list[float]] | None = None,
       iterations: int = 40) -> tuple[dict[str, list[float]], float]:
    """m-probabilities and the match share λ of the candidate pairs by EM on their level patterns
    (m, u and λ all free in the blocked pairs; the u used for scoring comes from random pairs)."""
    m = {f: list(v) for f, v in (m0 or _M0).items()}
    ub = {f: [1.0 / len(LEVELS[f])] * len(LEVELS[f]) for f in FIELDS}
    lam = 0.3
    items = [(p, c) for p, c in patterns.items() if p[5] != -1]
    for _ in range(iterations):
        sm = {f: [1e-6] * len(LEVELS[f]) for f in FIELDS}
        su = {f: [1e-6] * len(LEVELS[f]) for f in FIELDS}
        tot_m = tot = 0.0
        for p, c in items:
            pm, pu = lam, 1 - lam
            for k, level in enumerate(p):
                if level is not None:
                    f = FIELDS[k]
                    pm *= m[f][level]
                    pu *= ub[f][level]
            g = pm / (pm + pu) if pm + pu > 0 else 0.0
            tot_m += c * g
            tot += c
            for k, level in enumerate(p):
                if level is not None:
                    f = FIELDS[k]
                    sm[f][level] += c * g
                    su[f][level] += c * (1 - g)
        lam = tot_m / tot if tot else lam
        m = {f: [x / sum(v) for x in v] for f, v in sm.items()}
        capped = [min(m["name"][k], NAME_M_CEILING.get(k, 1.0)) for k in range(len(m["name"]))]
        free = sum(x for k, x in enumerate(capped) if k not in NAME_M_CEILING)
        left = 1 - sum(x for k, x in enumerate(capped) if k in NAME_M_CEILING)
        m["name"] = [x if k in NAME_M_CEILING else x * left / free for k, x in enumerate(capped)]
        m = {f: [max(x, M_FLOOR) for x in v] for f, v in m.items()}  # a level never seen is not impossible
        ub = {f: [x / sum(v) for x in v] for f, v in su.items()}
    return m, lam


def train(recs: Sequence[Record], pairs: Sequence[tuple[int, int]], base: Model | None = None, samples: int = 200_000,
          log: Callable[[str], None] | None = None) -> Model:
    """A model trained on `recs` (no labels): u from random pairs, m and ρ by EM over the candidate
    pairs (index pairs), frequency tables of surnames, given names and birth years. The thresholds are
    `base`'s, by default v5's (Model's defaults: chosen once, on generated seed-6 data)."""
    base = base or Model()
    n = len(recs)
    u = estimate_u(recs, samples)
    if log:
        log(f"u estimated from random pairs of {n:,} records")
    patterns: Counter[tuple[int | None, ...]] = Counter()
    n_pairs = 0
    for i, j in pairs:  # type: ignore[union-attr]
        patterns[levels(recs[i], recs[j])] += 1
        n_pairs += 1
    m, lam = em(patterns)
    if log:
        log(f"EM over {n_pairs:,} candidate pairs ({len(patterns):,} patterns): λ={lam:.4f}")
    named = [r for r in recs if r.name]
    model = Model(m=m, u=u, rho=max(lam * n_pairs / max(n, 1), 1e-4),
                  surname_freq={k: round(v, 8) for k, v in _freq([r.surname_py for r in named]).items()},
                  given_freq={k: round(v, 8) for k, v in _freq([r.given_py for r in named]).items()},
                  year_freq={k: round(v, 8) for k, v in _freq([r.birth[:4] for r in recs]).items()},
                  name_freq={k: round(v, 8) for k, v in _freq([f"{r.surname_py}|{r.given_py}" for r in named]).items()
                             if v >= COMMON_NAME_FREQ},
                  min_freq=1.0 / max(n, 1), auto_probability=base.auto_probability,
                  review_probability=base.review_probability, review_max_fraction=base.review_max_fraction,
                  trained={"records": n, "candidate_pairs": n_pairs, "lambda": round(lam, 5),
                           "date": date.today().isoformat()})
    return model
