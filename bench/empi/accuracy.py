"""B6 batch linkage: accuracy (pairwise precision/recall/F1 against the known truth) and speed.

    .venv/bin/python bench/empi/accuracy.py --persons 10000 52000 --rules v4 v5
    .venv/bin/python bench/empi/accuracy.py --seed 11 --persons 31000 --rules v4 v5   # held out (issue 17)
    .venv/bin/python bench/empi/accuracy.py --input records.csv --truth truth.csv

Runs `yilianti empi link` as a subprocess (as the evaluation does), once per rules version, and
prints one line per run. Splink 5 (DuckDB, requirements-bench.lock) runs on the same records in
the same run when installed (bench/empi/splink_compare.py); otherwise a skip line says so.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(__file__))
import splink_compare  # noqa: E402
from generate import generate  # noqa: E402


def _read(path: str, col: str) -> dict[str, str]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return {row["record_id"]: row[col] for row in csv.DictReader(fh)}


def pairwise(pred: dict[str, str], truth: dict[str, str]) -> tuple[float, float, float, int, int, int]:
    def pairs(counts: Counter[object]) -> int:
        return sum(c * (c - 1) // 2 for c in counts.values())

    tp = pairs(Counter((pred[r], truth[r]) for r in truth))
    predicted = pairs(Counter(pred[r] for r in truth))
    actual = pairs(Counter(truth.values()))
    p = tp / predicted if predicted else 1.0
    rc = tp / actual if actual else 1.0
    f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
    return p, rc, f1, tp, predicted, actual


def run_linker(records: str, out_dir: str, rules: str) -> tuple[dict[str, str], float, int]:
    out, review = os.path.join(out_dir, "links.csv"), os.path.join(out_dir, "review.csv")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "yilianti.cli", "empi", "link", "--input", records,
                           "--output", out, "--review", review, "--rules", rules], capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"linker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = [line for line in proc.stderr.splitlines() if line.startswith("summary:")]
    print("   ", summary[-1] if summary else "(no summary)", file=sys.stderr)
    with open(review, encoding="utf-8") as fh:
        n_review = sum(1 for _ in fh) - 1
    return _read(out, "person_id"), seconds, n_review


def splink_line(records: str, truth: dict[str, str], max_records: int) -> str:
    version = splink_compare.available()
    if version is None:
        return ("splink: SKIPPED — not installed "
                "(.venv/bin/pip install -r requirements-bench.lock to compare with Splink)")
    if len(truth) > max_records:
        return f"splink {version}: SKIPPED — {len(truth):,} records > --splink-max-records {max_records:,}"
    t0 = time.monotonic()
    scored, ids = splink_compare.predict(records)
    best, half = splink_compare.sweep(scored, [truth[r] for r in ids])
    seconds = time.monotonic() - t0
    return (f"splink {version} (duckdb): seconds={seconds:.1f} (train {scored.seconds_train:.1f}, "
            f"predict {scored.seconds_predict:.1f}) scored pairs={len(scored.weights):,} | "
            f"p>=0.5: precision={half.precision:.4f} recall={half.recall:.4f} F1={half.f1:.4f} | "
            f"best (p>={best.probability:.6f}, weight {best.threshold_weight:.2f}): "
            f"precision={best.precision:.4f} recall={best.recall:.4f} F1={best.f1:.4f}")


def one(records: str, truth_path: str, label: str, rules: list[str], splink_max: int) -> None:
    truth = _read(truth_path, "person")
    n = len(truth)
    for version in rules:
        with tempfile.TemporaryDirectory() as tmp:
            pred, seconds, n_review = run_linker(records, tmp, version)
        p, r, f1, tp, predicted, actual = pairwise(pred, truth)
        print(f"{label} rules={version}: records={n} seconds={seconds:.1f} records/s={n / seconds:,.0f} "
              f"precision={p:.4f} recall={r:.4f} F1={f1:.4f} (true pairs {actual}, predicted {predicted}, "
              f"correct {tp}, false {predicted - tp}) review_pairs={n_review} "
              f"({n_review / max(n, 1):.2%} of records)", flush=True)
    print(f"{label}", splink_line(records, truth, splink_max), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, nargs="*", default=[10_000])
    ap.add_argument("--input")
    ap.add_argument("--truth")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--rules", nargs="*", default=["v4", "v5"],
                    help="rules versions to run (v5 estimates its weights from the records, no labels)")
    ap.add_argument("--splink-max-records", type=int, default=200_000,
                    help="skip Splink above this many records (it needs minutes and GBs at 1M)")
    a = ap.parse_args()
    if a.input:
        one(a.input, a.truth, os.path.basename(a.input), a.rules, a.splink_max_records)
        return
    for n in a.persons:
        with tempfile.TemporaryDirectory() as tmp:
            rec, truth, _ = generate(n, tmp, a.seed)
            one(rec, truth, f"persons={n}", a.rules, a.splink_max_records)


if __name__ == "__main__":
    main()
