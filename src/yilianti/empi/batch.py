"""`yilianti empi link --input IN.csv --output OUT.csv [--review REVIEW.csv]` (CONTRACTS.md).

Stand-alone: reads the CSV, normalises, links deterministically on valid resident IDs,
scores blocked candidate pairs (the current rules, `matching.CURRENT`; `--rules v1` for the
old ones), groups auto-links with a union-find that never joins two different valid resident
IDs, writes one output row per input row in input order. `--links LINKS.csv` (optional, beyond
the contract) lists every link that joined two groups with its method, score and rules version.
"""

from __future__ import annotations

import csv
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from yilianti.empi import fs, matching
from yilianti.empi.fs import NameCounts
from yilianti.empi.matching import CURRENT, Rules
from yilianti.empi.normalise import Malformed, Record, record

COLUMNS = ("record_id", "source", "name", "sex", "birth_date", "id_number", "phone", "address")
PROGRESS_EVERY = 100_000
TRAIN_MIN_RECORDS = 2_000  # rules v5 estimates its weights from a file at least this large (EM needs pairs)


class InputError(Exception):
    pass


@dataclass
class Result:
    record_ids: list[str]
    person_ids: list[str]
    review: list[tuple[str, str, float]]
    malformed: Counter[str]
    stats: dict[str, int] = field(default_factory=dict)

    links: list[tuple[str, str, str, float]] = field(default_factory=list)
    rules_version: str = ""

    @property
    def persons(self) -> int:
        return len(set(self.person_ids))


class _UnionFind:
    """Groups of records; a group keeps its valid resident ID so two different IDs never join."""

    def __init__(self, rids: Sequence[str]) -> None:
        self.parent = list(range(len(rids)))
        self.rid = list(rids)

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        ida, idb = self.rid[ra], self.rid[rb]
        if ida and idb and ida != idb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.rid[ra] = ida or idb
        return True


def _log(out: TextIO | None, msg: str) -> None:
    if out is not None:
        print(msg, file=out, flush=True)


def read_csv(path: str, malformed: Malformed, log: TextIO | None = None) -> tuple[list[str], list[Record]]:
    ids: list[str] = []
    recs: list[Record] = []
    try:
        fh = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc
        if header is None:
            raise InputError(f"{path} is empty (expected header {','.join(COLUMNS)})")
        header = [h.strip().lower() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise InputError(f"{path}: missing columns {', '.join(missing)}")
        pos = {c: header.index(c) for c in COLUMNS}
        width = len(header)
        try:
            for n, row in enumerate(reader, 1):
                if not row:
                    continue
                if len(row) < width:
                    row = row + [""] * (width - len(row))
                values = {c: row[p] for c, p in pos.items()}
                ids.append(values["record_id"].strip() or f"#{n}")
                recs.append(record(values, malformed))
                if n % PROGRESS_EVERY == 0:
                    _log(log, f"read {n:,} records")
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc
    return ids, recs


def _blocks(recs: Sequence[Record]) -> Iterable[tuple[str, dict[tuple[str, ...], list[int]]]]:
    """Blocking keys: none depends on the resident ID (those are linked deterministically)."""
    def build(keyfn) -> dict[tuple[str, ...], list[int]]:  # type: ignore[no-untyped-def]
        d: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i, r in enumerate(recs):
            k = keyfn(r)
            if k is not None:
                d[k].append(i)
        return d

    yield "name_pinyin+year", build(lambda r: (r.surname_py, r.given_py, r.birth[:4])
                                    if r.given_py and r.birth else None)
    yield "phone", build(lambda r: (r.phone,) if r.phone else None)
    yield "surname+birth_date", build(lambda r: (r.surname_py, r.birth) if r.surname_py and r.birth else None)
    yield "given+birth_date", build(lambda r: (r.given_py, r.birth) if r.given_py and r.birth else None)
    yield "name+sex", build(lambda r: (r.name, r.sex) if r.name and not r.birth else None)


def candidate_pairs(recs: Sequence[Record], rules: Rules, stats: Counter[str],
                    log: TextIO | None = None) -> set[int]:
    """Pair codes i*n+j (i<j). Blocks above rules.max_block use a sorted window, so the work per
    record is bounded whatever the size of the data set."""
    n = len(recs)
    pairs: set[int] = set()
    w = rules.window
    for key_name, blocks in _blocks(recs):
        before = len(pairs)
        for members in blocks.values():
            m = len(members)
            if m < 2:
                continue
            if m <= rules.max_block:
                for x in range(m):
                    i = members[x]
                    for y in range(x + 1, m):
                        j = members[y]
                        if recs[i].rid and recs[j].rid:
                            continue
                        pairs.add(i * n + j)
            else:
                stats["oversize_blocks"] += 1
                ordered = sorted(members, key=lambda k: (recs[k].birth, recs[k].given_py, recs[k].name, k))
                for x in range(m):
                    i = ordered[x]
                    for y in range(x + 1, min(m, x + 1 + w)):
                        j = ordered[y]
                        if recs[i].rid and recs[j].rid:
                            continue
                        pairs.add(i * n + j if i < j else j * n + i)
        stats[f"pairs_{key_name}"] = len(pairs) - before
        _log(log, f"blocking {key_name}: {len(blocks):,} blocks, {len(pairs) - before:,} new candidate pairs")
    return pairs


Link = tuple[str, str, str, float]  # record_id_a, record_id_b, method (resident_id | score), score


def link(ids: Sequence[str], recs: Sequence[Record], rules: Rules = CURRENT,
         log: TextIO | None = None, links: list[Link] | None = None,
         ) -> tuple[list[str], list[tuple[str, str, float]], Counter[str]]:
    """Person id per record, review-band pairs, counters. When `links` is a list, every link
    that joined two groups is appended to it (made by `rules`)."""
    n = len(recs)
    stats: Counter[str] = Counter()
    uf = _UnionFind([r.rid for r in recs])
    # 1. deterministic: same valid resident ID → same person
    first_of: dict[str, int] = {}
    for i, r in enumerate(recs):
        if r.rid:
            if r.rid in first_of:
                uf.union(first_of[r.rid], i)
                stats["id_links"] += 1
                if links is not None:
                    links.append((ids[first_of[r.rid]], ids[i], "resident_id", 100.0))
            else:
                first_of[r.rid] = i
    _log(log, f"deterministic: {stats['id_links']:,} links on valid resident IDs")
    # 2. probabilistic on blocked candidates
    pairs = candidate_pairs(recs, rules, stats, log)
    if rules.fellegi_sunter:
        if rules.model is None and n >= TRAIN_MIN_RECORDS:  # weights estimated from the records linked (no labels)
            rules = matching.with_model(rules, fs.train(recs, [divmod(code, n) for code in pairs],
                                                        log=lambda m: _log(log, m)))
        rules = matching.fs_rules(rules)  # a small file: the stored weights (fs.default_model)
        auto, review = _score_fs(recs, pairs, rules, stats, log)
    else:
        auto, review = _score_rules(recs, pairs, rules, stats, log)
    stats["pairs_scored"] = len(pairs)
    del pairs
    auto.sort()
    for neg, i, j in auto:
        joins = links is not None and uf.find(i) != uf.find(j)
        if uf.union(i, j):
            stats["auto_links"] += 1
            if joins and links is not None:
                links.append((ids[i], ids[j], "score", round(-neg, 2)))
        else:
            stats["auto_links_refused_id_conflict"] += 1
    _log(log, f"scored {stats['pairs_scored']:,} pairs: {len(auto):,} above auto-link, "
              f"{len(review):,} in the review band")
    roots = [uf.find(i) for i in range(n)]
    person = [f"P{r + 1}" for r in roots]
    if rules.fellegi_sunter:
        # most likely first, at most review_max_fraction of the records (a band people can clear)
        cap = int(rules.model.review_max_fraction * n)
        review.sort()
        review_out = [(i, j, -neg) for neg, i, j in review if roots[i] != roots[j]][:cap]
    else:
        review_out = sorted(
            ((i, j, -neg) for neg, i, j in review if roots[i] != roots[j]), key=lambda t: (t[0], t[1]))
    return person, [(ids[i], ids[j], round(s, 2)) for i, j, s in review_out], stats


Scored = list[tuple[float, int, int]]


def _score_rules(recs: Sequence[Record], pairs: set[int], rules: Rules, stats: Counter[str],
                 log: TextIO | None) -> tuple[Scored, Scored]:
    """Rules v1–v4: hand-set weights, the exact name weighed by its frequency in the file."""
    n = len(recs)
    # exact-name weight by frequency; homophones of a common name (王玮 ~ 王伟) are as common as it
    name_count = Counter(r.name for r in recs if r.name)
    sound_count = Counter((r.surname_py, r.given_py) for r in recs if r.name)
    sound_of = {r.name: (r.surname_py, r.given_py) for r in recs if r.name}
    common_sounds = {sound_of[nm] for nm in matching.COMMON_NAMES if nm in sound_of}
    name_weight = {
        nm: matching.name_exact_weight(rules, max(c, sound_count[sound_of[nm]]), n,
                                       nm, sound_of[nm] in common_sounds)
        for nm, c in name_count.items()}
    auto: list[tuple[float, int, int]] = []
    review: list[tuple[float, int, int]] = []
    score = matching.score
    for done, code in enumerate(pairs, 1):
        i, j = divmod(code, n)
        a, b = recs[i], recs[j]
        s = score(rules, a, b, name_weight.get(a.name, rules.name_exact_min))
        if s >= rules.auto_link:
            auto.append((-s, i, j))
        elif s >= rules.review:
            review.append((-s, i, j))
        if done % 1_000_000 == 0:
            _log(log, f"scored {done:,} / {len(pairs):,} pairs")
    return auto, review


def name_counts(recs: Sequence[Record]) -> Callable[[Record], NameCounts]:
    """The frequency of a record's name among the other records of the file (v5's term-frequency
    adjustment): records with its name key (pinyin), and with its name key and birth year."""
    n = len(recs)
    by_name = Counter((r.surname_py, r.given_py) for r in recs if r.name)
    by_year = Counter((r.surname_py, r.given_py, r.birth[:4]) for r in recs if r.name and r.birth)

    def counts(r: Record) -> NameCounts:
        if not r.name:
            return NameCounts(n, 0, 0)
        key = (r.surname_py, r.given_py)
        return NameCounts(n, by_name[key] - 1, by_year[(*key, r.birth[:4])] - 1 if r.birth else 0)
    return counts


def _score_fs(recs: Sequence[Record], pairs: set[int], rules: Rules, stats: Counter[str],
              log: TextIO | None) -> tuple[Scored, Scored]:
    """Rules v5 (empi/fs.py): the model's weights, the names weighed by their frequency in the file."""
    n = len(recs)
    scorer = fs.Scorer(rules.model)
    counts = name_counts(recs)
    auto: Scored = []
    review: Scored = []
    for code in pairs:
        i, j = divmod(code, n)
        a, b = recs[i], recs[j]
        s = scorer.score(a, b, counts(a))
        if s >= scorer.auto_link:
            auto.append((-s, i, j))
        elif s >= scorer.review:
            review.append((-s, i, j))
    return auto, review


def train_on(recs: Sequence[Record], rules: Rules = matching.RULES_V5, log: TextIO | None = None) -> fs.Model:
    """v5 weights estimated from these records (no labels): EM over their candidate pairs."""
    n = len(recs)
    pairs = candidate_pairs(recs, rules, Counter(), None)
    return fs.train(recs, [divmod(code, n) for code in pairs], rules.model, log=lambda m: _log(log, m))


def run(input_path: str, output_path: str, review_path: str | None = None, rules: Rules = CURRENT,
        log: TextIO | None | bool = True, links_path: str | None = None) -> Result:
    """log=True writes progress to the current sys.stderr; None/False is silent."""
    if log is True:
        log = sys.stderr
    elif log is False:
        log = None
    started = time.monotonic()
    malformed = Malformed()
    _log(log, f"empi link (rules {rules.version}): reading {input_path}")
    ids, recs = read_csv(input_path, malformed, log)
    _log(log, f"read {len(recs):,} records in {time.monotonic() - started:.1f}s")
    links: list[Link] | None = [] if links_path else None
    person, review, stats = link(ids, recs, rules, log, links)
    try:
        with open(output_path, "w", encoding="utf-8", newline="") as fh:
            wr = csv.writer(fh, lineterminator="\n")
            wr.writerow(("record_id", "person_id"))
            wr.writerows(zip(ids, person, strict=True))
        if review_path:
            with open(review_path, "w", encoding="utf-8", newline="") as fh:
                wr = csv.writer(fh, lineterminator="\n")
                wr.writerow(("record_id_a", "record_id_b", "score"))
                wr.writerows(review)
        if links_path:
            with open(links_path, "w", encoding="utf-8", newline="") as fh:
                wr = csv.writer(fh, lineterminator="\n")
                wr.writerow(("record_id_a", "record_id_b", "method", "score", "rules_version"))
                wr.writerows((*lk, rules.version) for lk in links or ())
    except OSError as exc:
        raise InputError(f"cannot write output: {exc}") from exc
    result = Result(list(ids), person, review, malformed.counts, dict(stats), links or [], rules.version)
    seconds = time.monotonic() - started
    bad = ", ".join(f"{k}={v}" for k, v in sorted(malformed.counts.items())) or "none"
    _log(log, f"summary: records={len(ids)} persons={result.persons} review_pairs={len(review)} "
              f"malformed: {bad} seconds={seconds:.1f} rules={rules.version}")
    return result


def main(input_path: str, output_path: str, review_path: str | None = None, rules_version: str | None = None,
         links_path: str | None = None, weights_path: str | None = None) -> int:
    try:
        rules = matching.rules_for(rules_version) if rules_version else CURRENT
        if weights_path:
            if not rules.fellegi_sunter:
                raise ValueError(f"--weights applies to rules v5, not {rules.version}")
            rules = matching.with_model(rules, fs.Model.load(weights_path))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run(input_path, output_path, review_path, rules, links_path=links_path)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
