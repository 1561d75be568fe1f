"""Key rotation for the encrypted personal data (`yilianti keys rotate`).

Every column of type `kit.crypto.Encrypted` in the schema is re-encrypted under the newest key of
YILIANTI_DATA_KEYS (newest first) and the algorithm of YILIANTI_CRYPTO_SUITE (Fernet or SM4); tokens
already current are left alone, and every blind index is recomputed from the decrypted value when it
differs (the index key or the suite's HMAC changed), so a run that was interrupted can simply be
started again. Each row's ciphertext and indexes change in one UPDATE, only if the token is still the
one that was read (a concurrent change wins), committed per batch of rows: nothing is half-written.
Progress goes to `out` (stderr).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from cryptography.fernet import InvalidToken
from sqlalchemy import Connection, Table, inspect, text

from yilianti.config import get_settings
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
    """Bring every encrypted value and blind index to the newest key and the suite's algorithms; returns
    {table.column: values rewritten}. `reindex` is kept for the command line: the indexes are always checked."""
    out = out if out is not None else sys.stderr
    indexes: dict[tuple[str, str], list[tuple[str, Callable[[str], str | None]]]] = {}
    for t, enc, bidx, fn in BLIND_INDEXES:
        indexes.setdefault((t, enc), []).append((bidx, fn))
    done: dict[str, int] = {}
    for table, cols in encrypted_columns():
        total = conn.scalar(text(f"SELECT count(*) FROM {table.name}")) or 0
        for col in cols:
            done[f"{table.name}.{col}"] = 0
        names = [*cols, *(bidx for col in cols for bidx, _ in indexes.get((table.name, col), []))]
        last, seen = 0, 0
        while True:
            rows = conn.execute(text(f"SELECT id, {', '.join(names)} FROM {table.name} WHERE id > :last "
                                     f"ORDER BY id LIMIT :n"), {"last": last, "n": BATCH}).all()
            if not rows:
                break
            for row in rows:
                stored = dict(zip(names, row[1:], strict=True))
                for col in cols:
                    token = stored[col]
                    if token is None:
                        continue
                    new_values: dict[str, str | None] = {}
                    if not crypto.is_current(token):
                        new_values[col] = crypto.rotate(token)
                    col_indexes = indexes.get((table.name, col), [])
                    plain = crypto.decrypt(token) if col_indexes else ""
                    for bidx, fn in col_indexes:
                        fresh = fn(plain)
                        if fresh != stored[bidx]:
                            new_values[bidx] = fresh
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


# (table, ciphertext column) sampled at start: the oldest and the newest value of each
_SAMPLED = (("patient_identifier", "value_enc"), ("patient", "phone_enc"))


def stored_data_problem(conn: Connection) -> str | None:
    """Why the configured keys cannot read the personal data already stored (None when they can).

    `yilianti serve`, `demo` and `worker` refuse to start on it: with other keys (a lost or newly generated
    var/data.keys, a wrong YILIANTI_DATA_KEYS) every page listing patients would fail."""
    tables = set(inspect(conn).get_table_names())
    for table, col in _SAMPLED:
        if table not in tables:  # not migrated yet: nothing stored
            continue
        for order in ("ASC", "DESC"):
            row = conn.execute(text(f"SELECT id, {col} FROM {table} WHERE {col} IS NOT NULL "
                                    f"ORDER BY id {order} LIMIT 1")).first()
            if row is None:
                continue
            try:
                crypto.decrypt(row[1])
            except InvalidToken:
                return (f"{table} row {row[0]} was encrypted under a key that YILIANTI_DATA_KEYS (or "
                        f"{get_settings().var_dir / 'data.keys'}) does not hold: give the keys the data were "
                        "written with (newest first, comma separated); a new key comes first, then "
                        "`yilianti keys rotate`")
    return None


def stale_index_warning(conn: Connection) -> str | None:
    """The newest identifier's blind index was made under another index key or suite (searches miss it)."""
    if not inspect(conn).has_table("patient_identifier"):
        return None
    row = conn.execute(text("SELECT value_enc, value_bidx FROM patient_identifier ORDER BY id DESC LIMIT 1")).first()
    if row is None or crypto.blind_index("id", crypto.decrypt(row[0])) == row[1]:
        return None
    return ("the blind indexes were made under another YILIANTI_INDEX_KEY or YILIANTI_CRYPTO_SUITE: exact search "
            "misses records until `yilianti keys rotate` has run")
