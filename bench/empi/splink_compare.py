"""B6: Splink 5 (DuckDB) on the same records as `yilianti empi link`, for the side-by-side figures.

Benchmark-only (requirements-bench.lock); `available()` is False when splink is not installed.

Fairness: Splink gets the same cleaned values our linker sees (our `empi.normalise`: NFKC,
traditional → simplified, pinyin, dates, phones, valid resident IDs) — it has no Chinese
normalisation of its own — and the same blocking keys we block on. Its model is trained on
the data without labels: λ from the valid resident IDs (recall of that rule = share of records
with a valid ID, squared), u by random sampling, m by EM on two blocking rules. Records are
grouped by connected components of the pairs above a threshold (what Splink's
`cluster_pairwise_predictions_at_threshold` does), so the pairwise precision/recall are
measured exactly as for our linker. The threshold sweep uses the truth (`best` is the best
Splink could do with hindsight); 0.5 is the threshold one would choose without labels.
"""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from yilianti.empi import normalise


def available() -> str | None:
    """Splink's version, or None when it is not installed."""
    try:
        import splink
    except ImportError:
        return None
    return str(splink.__version__)


def load(path: str) -> dict[str, list[Any]]:
    """records.csv → columns of cleaned values (None = missing) for Splink."""
    cols: dict[str, list[Any]] = {k: [] for k in (
        "unique_id", "name", "name_py", "surname_py", "given_py", "birth", "birth_year", "sex",
        "phone", "address", "addr_bg", "rid", "rid_weak")}
    malformed = normalise.Malformed()
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            r = normalise.record(row, malformed)
            addr = normalise.address(row.get("address") or "")
            cols["unique_id"].append(row["record_id"])
            cols["name"].append(r.name or None)
            cols["name_py"].append(f"{r.surname_py} {r.given_py}" if r.name else None)
            cols["surname_py"].append(r.surname_py or None)
            cols["given_py"].append(r.given_py or None)
            cols["birth"].append(r.birth or None)
            cols["birth_year"].append(r.birth[:4] or None)
            cols["sex"].append(r.sex or None)
            cols["phone"].append(r.phone or None)
            cols["address"].append(addr or None)
            cols["addr_bg"].append(sorted(r.addr) if r.addr else None)
            cols["rid"].append(r.rid or None)
            cols["rid_weak"].append(r.rid_weak or None)
    return cols


def _settings() -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    jac = ("len(list_intersect(addr_bg_l, addr_bg_r)) * 1.0 / "
           "len(list_distinct(list_concat(addr_bg_l, addr_bg_r)))")
    comparisons: list[Any] = [
        cl.CustomComparison(output_column_name="name", comparison_levels=[
            cll.NullLevel("name"),
            cll.ExactMatchLevel("name", term_frequency_adjustments=True),
            cll.ExactMatchLevel("name_py").configure(label_for_charts="same pinyin (homophone)"),
            cll.JaroWinklerLevel("name_py", 0.92),
            cll.CustomLevel("surname_py_l = surname_py_r", label_for_charts="same surname only"),
            cll.ElseLevel()]),
        cl.CustomComparison(output_column_name="birth", comparison_levels=[
            cll.NullLevel("birth"),
            cll.ExactMatchLevel("birth"),
            cll.CustomLevel("substr(birth_l, 1, 4) = substr(birth_r, 1, 4) AND "
                            "substr(birth_l, 5, 2) = substr(birth_r, 7, 2) AND "
                            "substr(birth_l, 7, 2) = substr(birth_r, 5, 2)", label_for_charts="day/month swap"),
            cll.DamerauLevenshteinLevel("birth", 1),
            cll.ElseLevel()]),
        cl.ExactMatch("sex"),
        cl.ExactMatch("phone").configure(term_frequency_adjustments=True),
        cl.CustomComparison(output_column_name="address", comparison_levels=[
            cll.NullLevel("address"),
            cll.ExactMatchLevel("address"),
            cll.CustomLevel(f"{jac} >= 0.75", label_for_charts="bigram Jaccard >= 0.75"),
            cll.CustomLevel(f"{jac} >= 0.45", label_for_charts="bigram Jaccard >= 0.45"),
            cll.ElseLevel()]),
        cl.CustomComparison(output_column_name="resident_id", comparison_levels=[
            cll.CustomLevel("(rid_l IS NULL OR rid_r IS NULL) AND (rid_weak_l IS NULL OR rid_weak_r IS NULL)")
            .configure(is_null_level=True),
            cll.CustomLevel("rid_l = rid_r", label_for_charts="same valid ID"),
            cll.CustomLevel("rid_weak_l = rid_weak_r", label_for_charts="same ID failing its check"),
            cll.CustomLevel("rid_l <> rid_r", label_for_charts="two different valid IDs"),
            cll.ElseLevel()]),
    ]
    # the same blocking keys as src/yilianti/empi/batch.py _blocks(), plus the deterministic ID link
    blocking: list[Any] = [
        block_on("rid"),
        block_on("surname_py", "given_py", "birth_year"),
        block_on("phone"),
        block_on("surname_py", "birth"),
        block_on("given_py", "birth"),
        "l.name = r.name AND l.sex = r.sex AND l.birth IS NULL AND r.birth IS NULL",
    ]
    return SettingsCreator(link_type="dedupe_only", comparisons=comparisons,
                           blocking_rules_to_generate_predictions=blocking,
                           retain_matching_columns=False, retain_intermediate_calculation_columns=False)


@dataclass
class Scored:
    weights: list[float]
    left: list[int]
    right: list[int]
    n: int
    seconds_train: float
    seconds_predict: float


def predict(records_path: str, u_pairs: float = 1e7, min_probability: float = 0.01) -> tuple[Scored, list[str]]:
    import logging

    import pyarrow as pa
    from splink import DuckDBAPI, Linker, block_on

    logging.getLogger("splink").setLevel(logging.ERROR)
    cols = load(records_path)
    ids = cols["unique_id"]
    n = len(ids)
    t0 = time.monotonic()
    db = DuckDBAPI()
    sdf = db.register(pa.table(cols), dataset_display_name="records")
    linker = Linker(sdf, _settings(), log_level=logging.ERROR)
    with_id = sum(1 for v in cols["rid"] if v) / max(n, 1)
    linker.training.estimate_probability_two_random_records_match([block_on("rid")], recall=max(with_id ** 2, 0.05))
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname_py", "given_py"))
    t1 = time.monotonic()
    pred = linker.inference.predict(threshold_match_probability=min_probability, warning_mode="never")
    tab = pred.as_pyarrow_table()
    t2 = time.monotonic()
    index = {u: i for i, u in enumerate(ids)}
    left = [index[u] for u in tab.column("unique_id_l").to_pylist()]
    right = [index[u] for u in tab.column("unique_id_r").to_pylist()]
    weights = tab.column("match_weight").to_pylist()
    return Scored(weights, left, right, n, t1 - t0, t2 - t1), ids


def prob_to_weight(p: float) -> float:
    return math.log2(p / (1 - p))


@dataclass
class Point:
    threshold_weight: float
    precision: float
    recall: float
    f1: float

    @property
    def probability(self) -> float:
        return 1 / (1 + 2 ** -self.threshold_weight)


def sweep(scored: Scored, truth_of: list[str]) -> tuple[Point, Point]:
    """(best F1 over every threshold, at probability 0.5): connected components of the pairs at or
    above a threshold, pairwise precision/recall against the truth, in one pass over the pairs in
    descending weight (small-into-large merging of the clusters' truth counts)."""
    n = scored.n
    actual = sum(c * (c - 1) // 2 for c in Counter(truth_of).values())
    parent = list(range(n))
    members: list[Counter[str] | None] = [Counter({t: 1}) for t in truth_of]
    size = [1] * n

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def point(w: float, tp: int, predicted: int) -> Point:
        p = tp / predicted if predicted else 1.0
        r = tp / actual if actual else 1.0
        return Point(w, p, r, 2 * p * r / (p + r) if p + r else 0.0)

    order = sorted(range(len(scored.weights)), key=lambda k: -scored.weights[k])
    half = prob_to_weight(0.5)  # 0.0
    tp = predicted = 0
    best = point(math.inf, 0, 0)
    at_half: Point | None = None
    for pos, k in enumerate(order):
        w = scored.weights[k]
        if at_half is None and w < half:
            at_half = point(half, tp, predicted)
        a, b = find(scored.left[k]), find(scored.right[k])
        if a != b:
            if size[a] < size[b]:
                a, b = b, a
            ca, cb = members[a], members[b]
            assert ca is not None and cb is not None
            tp += sum(c * ca.get(t, 0) for t, c in cb.items())
            predicted += size[a] * size[b]
            ca.update(cb)
            members[b] = None
            parent[b] = a
            size[a] += size[b]
        # evaluate once per distinct weight (the last pair of a run of equal weights)
        if pos + 1 == len(order) or scored.weights[order[pos + 1]] != w:
            cur = point(w, tp, predicted)
            if cur.f1 > best.f1:
                best = cur
    if at_half is None:
        at_half = point(half, tp, predicted)
    return best, at_half
