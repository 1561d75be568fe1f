"""B6 batch linkage: accuracy (pairwise precision/recall/F1 against the known truth) and speed.

    .venv/bin/python bench/empi/accuracy.py --persons 10000 50000
    .venv/bin/python bench/empi/accuracy.py --input records.csv --truth truth.csv

Runs `yilianti empi link` as a subprocess (as the evaluation does) and prints one line per run.
Splink (DuckDB) is compared when installed; otherwise the line says it was skipped.
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


def run_linker(records: str, out_dir: str) -> tuple[dict[str, str], float, int]:
    out, review = os.path.join(out_dir, "links.csv"), os.path.join(out_dir, "review.csv")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "yilianti.cli", "empi", "link", "--input", records,
                           "--output", out, "--review", review], capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"linker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = [line for line in proc.stderr.splitlines() if line.startswith("summary:")]
    print("   ", summary[-1] if summary else "(no summary)", file=sys.stderr)
    with open(review, encoding="utf-8") as fh:
        n_review = sum(1 for _ in fh) - 1
    return _read(out, "person_id"), seconds, n_review


def splink_line(records: str, truth: dict[str, str]) -> str:
    try:
        import splink  # noqa: F401
    except ImportError:
        return "splink: not installed — comparison skipped (pip install splink to enable)"
    return "splink: installed, comparison not implemented in this slice"


def one(records: str, truth_path: str, label: str) -> None:
    truth = _read(truth_path, "person")
    with tempfile.TemporaryDirectory() as tmp:
        pred, seconds, n_review = run_linker(records, tmp)
    p, r, f1, tp, predicted, actual = pairwise(pred, truth)
    n = len(truth)
    print(f"{label}: records={n} seconds={seconds:.1f} records/s={n / seconds:,.0f} "
          f"precision={p:.4f} recall={r:.4f} F1={f1:.4f} (true pairs {actual}, predicted {predicted}, "
          f"correct {tp}) review_pairs={n_review}", flush=True)
    print("   ", splink_line(records, truth), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, nargs="*", default=[10_000])
    ap.add_argument("--input")
    ap.add_argument("--truth")
    ap.add_argument("--seed", type=int, default=6)
    a = ap.parse_args()
    if a.input:
        one(a.input, a.truth, os.path.basename(a.input))
        return
    for n in a.persons:
        with tempfile.TemporaryDirectory() as tmp:
            rec, truth, _ = generate(n, tmp, a.seed)
            one(rec, truth, f"persons={n}")


if __name__ == "__main__":
    main()
