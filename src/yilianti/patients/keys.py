"""Key rotation for the encrypted personal data (`yilianti keys rotate`).

Every column of type `kit.crypto.Encrypted` in the schema is re-encrypted under the newest key of
YILIANTI_DATA_KEYS (newest first); tokens already under the newest key are left alone, so a run
that was interrupted can simply be started again. Each row is updated only if its token is still
the one that was read (a concurrent change wins). With `reindex`, the blind indexes are recomputed
from the decrypted values (after the index key changed). Progress goes to `out` (stderr).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from sqlalchemy import Connection, Table, text

from yilianti.kit import crypto
from yilianti.models.base import Base

BATCH = 1000


def _phone_key(value: str) -> str | None:
    from yilianti.empi.normalise import phone

    norm = phone(value)
    return crypto.blind_index("phone", norm) if norm else None


# (table, ciphertext column, blind-index column, value → index)
BLIND_INDEXES: list[tuple[str, str, str, Callable[[str], str | None]]] = [
    ("patient", "phone_enc", "phone_bidx", lambda v: crypto.blind_index("phone", v)),
    ("patient_identifier", "value_enc", "value_bidx", lambda v: crypto.blind_index("id", v)),
    ("patient", "phone_enc", "phone_tail_bidx", crypto.tail_index),  # the picker's "last four"
    ("patient_identifier", "value_enc", "tail_bidx", crypto.tail_index),
    ("patient_record", "phone", "phone_key", _phone_key),  # the EMPI blocking key: normalised phone only
    ("patient_record", "rid", "rid_key", lambda v: crypto.blind_index("id", v)),  # EMPI matching compares it
]


def encrypted_columns() -> list[tuple[Table, list[str]]]:
    out = []
    for table in Base.metadata.sorted_tables:
        cols = [c.name for c in table.columns if isinstance(c.type, crypto.Encrypted)]
        if cols:
            out.append((table, cols))
    return out


def rotate_all(conn: Connection, *, reindex: bool = False, out: TextIO | None = None,
               commit: Callable[[], None] | None = None) -> dict[str, int]:
    """Re-encrypt every encrypted value under the newest key; returns {table.column: values rewritten}."""
    out = out if out is not None else sys.stderr
    indexes: dict[tuple[str, str], list[tuple[str, Callable[[str], str | None]]]] = {}
    for t, enc, bidx, fn in BLIND_INDEXES if reindex else []:
        indexes.setdefault((t, enc), []).append((bidx, fn))
    done: dict[str, int] = {}
    for table, cols in encrypted_columns():
        total = conn.scalar(text(f"SELECT count(*) FROM {table.name}")) or 0
        for col in cols:
            done[f"{table.name}.{col}"] = 0
        last, seen = 0, 0
        select_cols = ", ".join(cols)
        while True:
            rows = conn.execute(text(f"SELECT id, {select_cols} FROM {table.name} WHERE id > :last "
                                     f"ORDER BY id LIMIT :n"), {"last": last, "n": BATCH}).all()
            if not rows:
                break
            for row in rows:
                for i, col in enumerate(cols, 1):
                    token = row[i]
                    if token is None:
                        continue
                    new_values: dict[str, str | None] = {}
                    if not crypto.is_current(token):
                        new_values[col] = crypto.rotate(token)
                    for bidx, fn in indexes.get((table.name, col), []):
                        new_values[bidx] = fn(crypto.decrypt(token))
                    if not new_values:
                        continue
                    sets = ", ".join(f"{k} = :v_{k}" for k in new_values)
                    conn.execute(text(f"UPDATE {table.name} SET {sets} WHERE id = :id AND {col} = :old"),
                                 {"id": row[0], "old": token, **{f"v_{k}": v for k, v in new_values.items()}})
                    done[f"{table.name}.{col}"] += 1
            last, seen = rows[-1][0], seen + len(rows)
            if commit is not None:
                commit()
            print(f"keys rotate: {table.name}: {seen}/{total} rows", file=out, flush=True)
    return done
