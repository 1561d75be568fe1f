"""`yilianti empi train [--input CSV] [--output weights.json]`: refresh the v5 weights as the index grows.

Reads the index (every `patient_record`, as online matching sees it: phone and resident ID by their
blind indexes) or a CSV, estimates the model without labels (empi/fs.py `train`: u from random
pairs, m by EM over the blocked candidate pairs, name/surname/given-name/birth-year frequencies)
and writes the weights file online matching loads (YILIANTI_EMPI_WEIGHTS; read once per process: the
servers pick it up when restarted). The thresholds stay v5's.
"""

from __future__ import annotations

import os
import sys
import time

from sqlalchemy.orm import Session

from yilianti.empi import fs, matching
from yilianti.empi import repository as repo
from yilianti.empi.batch import InputError, read_csv, train_on
from yilianti.empi.normalise import Malformed, Record


def records_of_index(db: Session) -> list[Record]:
    """Every source record of the index as online matching reads a candidate (no ciphertext decrypted)."""
    from yilianti.empi.online import _candidate

    return [_candidate(db, tuple(row)) for row in repo.every_candidate_row(db)]


def records_from_database(database_url: str) -> list[Record]:
    from yilianti.db import make_engine

    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            return records_of_index(db)
    finally:
        engine.dispose()


def main(input_path: str | None, output_path: str | None, database_url: str | None) -> int:
    started = time.monotonic()
    try:
        if input_path:
            _ids, recs = read_csv(input_path, Malformed())
        else:
            assert database_url
            recs = records_from_database(database_url)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(recs) < 2:
        print("error: fewer than two records to train on", file=sys.stderr)
        return 2
    model = train_on(recs, matching.RULES_V5, log=sys.stderr)
    out = output_path or os.environ.get(fs.WEIGHTS_ENV) or "empi_weights_v5.json"
    try:
        model.save(out)
    except OSError as exc:
        print(f"error: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    w = model.weights()
    print(f"trained rules v5 on {len(recs):,} records in {time.monotonic() - started:.1f}s → {out} "
          f"(ρ={model.rho:.3f}; name same {w['name'][0]:.1f}, birth same {w['birth_date'][0]:.1f}, "
          f"phone same {w['phone'][0]:.1f})")
    return 0
