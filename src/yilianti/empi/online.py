"""Match on every registration: the online half of the master patient index (DOMAIN.md §5b).

Same normalisation (empi/normalise.py), rules, weights and thresholds (empi/matching.py,
`CURRENT`) as the batch linker. The candidates come from indexed blocking-key columns of
`patient_record` (name pinyin + birth year, phone, surname + birth date, given name + birth
date), each query bounded by `rules.max_block` rows, so the cost of one registration does
not grow with the size of the index.

Decision for a registration without a known resident ID:
- best person ≥ auto-link threshold → the record joins that person;
- persons in the review band → a new person plus one `MatchCandidate` per such person
  (or, after an auto-link, for other persons that also scored in the band);
- never a candidate (or link) across a do-not-match pair; two different valid resident IDs
  are never the same person (HARD_NEGATIVE).
Concurrency: on PostgreSQL the registration takes transaction-scoped advisory locks on its
resident ID and its name key (sorted, so no deadlock), so two simultaneous registrations of
the same new person end as one person. SQLite runs one writer at a time anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from yilianti.empi import fs, matching
from yilianti.empi import repository as repo
from yilianti.empi.matching import CURRENT, Rules
from yilianti.empi.normalise import Malformed, Record, address_bigrams, name_pinyin, record
from yilianti.empi.normalise import name as norm_name
from yilianti.empi.normalise import sex as norm_sex
from yilianti.kit.crypto import blind_index
from yilianti.models.empi import PatientRecord

RULES = CURRENT  # the rules in force (matching.CURRENT); each record and candidate stores its version

_COMMON_SOUNDS = frozenset(name_pinyin(nm) for nm in matching.COMMON_NAMES)


@dataclass(frozen=True)
class Demographics:
    name: str
    sex: str | None
    birth_date: date | None
    phone: str | None
    address: str | None
    rid: str | None

    def as_row(self) -> dict[str, str]:
        return {"name": self.name or "", "sex": self.sex or "",
                "birth_date": self.birth_date.isoformat() if self.birth_date else "",
                "id_number": self.rid or "", "phone": self.phone or "", "address": self.address or ""}

    def normalised(self) -> Record:
        return _normalised(self)


@lru_cache(maxsize=256)
def _normalised(demo: Demographics) -> Record:
    """One registration is normalised once (lock, match and record all use it): ID validation is not free."""
    return record(demo.as_row(), Malformed())


@dataclass(frozen=True)
class Keys:
    name_key: str | None
    surname_key: str | None
    given_key: str | None
    birth_key: str | None
    birth_year: int | None
    phone_key: str | None  # blind index of the normalised phone (the phone is never stored in clear)
    rid: str | None


def keys(rec: Record) -> Keys:
    birth = rec.birth or None
    return Keys(
        name_key=f"{rec.surname_py}|{rec.given_py}" if rec.name else None,
        surname_key=rec.surname_py or None, given_key=rec.given_py or None,
        birth_key=birth, birth_year=int(birth[:4]) if birth else None,
        phone_key=blind_index("phone", rec.phone) if rec.phone else None, rid=rec.rid or None)


@dataclass
class Scored:
    patient_id: int
    record_id: int
    score: float
    explanation: dict[str, float]


@dataclass
class Decision:
    link_to: int | None  # person to join, or None for a new person
    score: float | None
    review: list[Scored] = field(default_factory=list)  # persons in the review band (not linked)
    considered: int = 0  # candidate records scored


def _lock_id(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def lock(db: Session, demo: Demographics) -> None:
    """PostgreSQL: serialise registrations of the same resident ID / name key until commit."""
    if db.get_bind().dialect.name != "postgresql":
        return
    k = keys(demo.normalised())
    wanted = []
    if k.rid:
        wanted.append(f"rid:{k.rid}")
    if k.name_key and k.birth_year:
        wanted.append(f"name:{k.name_key}:{k.birth_year}")
    wanted.sort()  # one round trip, in this order (sorted: no deadlock)
    repo.advisory_locks(db, [_lock_id(key) for key in wanted])


def to_record(row: PatientRecord) -> Record:
    return Demographics(row.name, row.sex, row.birth_date, row.phone, row.address, row.rid).normalised()


def keyed(rec: Record, k: Keys) -> Record:
    """The registration as matching compares it: phone and resident ID by their blind indexes (HMAC),
    as the candidates' are read (`_candidates`). Scoring only tests these two fields for equality and
    presence, which the keyed HMAC preserves, so the scores are those of the plaintext."""
    return replace(rec, phone=k.phone_key or "", rid=blind_index("id", rec.rid) or "" if rec.rid else "")


@lru_cache(maxsize=65536)
def _name(value: str) -> str:
    return norm_name(value) if value.strip() else ""


_addr = lru_cache(maxsize=65536)(address_bigrams)  # candidates' addresses recur across registrations


def _candidate(db: Session, row: tuple[Any, ...]) -> Record:
    """A stored record as `record()` would normalise it (to_record), from its stored keys: name pinyin and
    birth date as the blocking keys hold them; phone and resident ID as blind indexes (see `keyed`)."""
    rec_id, _pid, name, sex_, address, birth_key, name_key, surname_key, given_key, phone_key, rid_key, has_rid = row
    nm = _name(name or "")
    if nm and name_key is None:  # written without keys (not by this application): compute them
        surname_py, given_py = name_pinyin(nm)
    else:
        surname_py, given_py = surname_key or "", given_key or ""
    sx = norm_sex(sex_) if sex_ else None
    if has_rid and (rid_key is None or sx is None):  # rare: the ID is needed in clear
        rid = repo.record_rid(db, rec_id)
        if rid:
            rid_key = rid_key or blind_index("id", rid)
            sx = sx or ("男" if int(rid[16]) % 2 == 1 else "女")
    return Record(nm, surname_py, given_py, birth_key or "", sx or "", rid_key or "", "", phone_key or "",
                  *_addr(address or ""))


def _candidates(db: Session, k: Keys, rules: Rules, name_key: str | None,
                ) -> tuple[list[tuple[Any, ...]], int, int, int]:
    """The blocked candidate records (the columns scoring needs) and, in the same statement, the count of
    records with the registration's name key (capped), (rules v5) with its name key and birth year, and the
    size of the index (max id), for the frequency-adjusted name weight. One statement: the union of the
    blocks' bounded index range scans."""
    flags = (bool(k.name_key and k.birth_year), bool(k.phone_key), bool(k.birth_key and k.surname_key),
             bool(k.birth_key and k.given_key))
    if not any(flags):
        return [], 0, 0, 0
    params: dict[str, Any] = {}
    if flags[0]:
        params.update(name_key=k.name_key, birth_year=k.birth_year)
    if flags[1]:
        params["phone_key"] = k.phone_key
    if flags[2]:
        params.update(birth_key=k.birth_key, surname_key=k.surname_key)
    if flags[3]:
        params.update(birth_key=k.birth_key, given_key=k.given_key)
    if name_key is not None:
        params["count_key"] = name_key
    by_year = bool(rules.fellegi_sunter and name_key is not None and k.birth_year)
    if by_year:
        params["count_year"] = k.birth_year
    rows = repo.blocked_candidates(db, flags, name_key is not None, rules.max_block, by_year, params)
    if not rows:
        return [], 0, 0, 0
    return [tuple(r)[:-3] for r in rows], int(rows[0][-3] or 0), int(rows[0][-2] or 0), int(rows[0][-1] or 0)


def name_weight(db: Session, rec: Record, rules: Rules) -> float:
    """Frequency-adjusted exact-name weight, as in the batch (count of the same pinyin name)."""
    if not rec.name:
        return rules.name_exact_min
    key = f"{rec.surname_py}|{rec.given_py}"
    count, population = repo.name_count(db, key)
    return _name_weight(rules, rec, count, population)


def _name_weight(rules: Rules, rec: Record, count: int, population: int) -> float:
    if not rec.name:
        return rules.name_exact_min
    sound = (rec.surname_py, rec.given_py)
    return matching.name_exact_weight(rules, count + 1, population + 1, rec.name, sound in _COMMON_SOUNDS)


def explain(rules: Rules, a: Record, b: Record, exact_weight: float) -> dict[str, float]:
    """Per-field weights of one pair: what agreed, what did not, and the total."""
    out = matching.explain(rules, a, b, exact_weight)
    parts: dict[str, float] = {"name": out["name"], "birth_date": out["birth_date"]}
    if a.sex and b.sex:
        parts["sex"] = rules.sex_agree if a.sex == b.sex else rules.sex_disagree
    if a.phone and b.phone:
        parts["phone"] = rules.phone_agree if a.phone == b.phone else rules.phone_disagree
    if a.addr and b.addr:
        j = matching.jaccard(a.addr, b.addr)
        parts["address"] = (rules.address_high if j >= rules.address_high_at else rules.address_mid
                            if j >= rules.address_mid_at else rules.address_low if j < rules.address_low_at else 0.0)
    if a.rid and b.rid:
        parts["resident_id"] = out["total"]
    parts["total"] = round(out["total"], 2)
    return parts


def _scoring(rules: Rules, rec: Record, count: int, count_year: int, population: int,
             ) -> tuple[Callable[[Record, Record], float], Callable[[Record, Record], dict[str, float]]]:
    """(score, explain) of pairs (registration, candidate): the batch linker's scoring, fed with the index's
    counts. v5: `fs.Scorer`, the name's frequency among the index's records (the registration is not one
    of them yet; the batch counts a record's name among the others too); v1–v4: the rules' weights."""
    if rules.fellegi_sunter:
        scorer = fs.scorer(rules.model)
        counts = fs.NameCounts(population + 1, count, count_year)
        return (lambda a, b: scorer.score(a, b, counts)), (lambda a, b: scorer.explain(a, b, counts))
    exact = _name_weight(rules, rec, count, population)
    return (lambda a, b: matching.score(rules, a, b, exact)), (lambda a, b: explain(rules, a, b, exact))


def decide(db: Session, demo: Demographics, rules: Rules | None = None) -> Decision:
    """Probabilistic decision for a registration whose resident ID (if any) is new (by `RULES`, the rules
    in force, unless others are given)."""
    rules = rules or RULES
    rec = demo.normalised()
    k = keys(rec)
    if rules.fellegi_sunter:
        rules = matching.fs_rules(rules)
    rows, count, count_year, population = _candidates(
        db, k, rules, f"{rec.surname_py}|{rec.given_py}" if rec.name else None)
    if not rows:
        return Decision(None, None)
    mine = keyed(rec, k)
    score, explained = _scoring(rules, rec, count, count_year, population)
    best: dict[int, Scored] = {}
    hard: set[int] = set()
    for row in rows:
        record_id, patient_id = row[0], row[1]
        other = _candidate(db, row)
        s = score(mine, other)
        if s <= matching.HARD_NEGATIVE:
            hard.add(patient_id)
            continue
        cur = best.get(patient_id)
        if cur is None or s > cur.score:
            best[patient_id] = Scored(patient_id, record_id, s, explained(mine, other))
    ranked = sorted((c for pid, c in best.items() if pid not in hard and c.score >= rules.review),
                    key=lambda c: -c.score)
    decision = Decision(None, None, considered=len(rows))
    if ranked and ranked[0].score >= rules.auto_link:
        decision.link_to, decision.score = ranked[0].patient_id, ranked[0].score
        if len(ranked) > 1:
            ranked = [c for c in ranked[1:] if not repo.do_not_match(db, decision.link_to, c.patient_id)]
        else:
            ranked = []
    decision.review = ranked[:5]
    return decision
