"""`yilianti backup --output DIR` and `yilianti restore --input DIR [--verify]` (CONTRACTS.md).

A backup directory holds:
- `database.dump` (PostgreSQL: `pg_dump --format=custom`) or `database.sqlite3` (SQLite's online backup API);
- `files/attachments/…` and `files/dicom/…` (uploaded attachments, received DICOM instances);
- `keys/` — the data keys, the blind-index key and the session key (mode 0600: the backup is as secret as
  the keys; without them the encrypted fields cannot be read);
- `manifest.json` — what the backup is (database kind, schema revision, time), the row count of every table
  and a sample of decrypted fields (as SHA-256 digests, never in clear) taken in the dump's own snapshot, and
  the SHA-256 and size of every file above.

Consistency: on PostgreSQL the counts and samples are read in a REPEATABLE READ transaction whose snapshot
`pg_dump --snapshot` dumps, so they describe exactly the dump, while the platform keeps running; on SQLite
they are read from the backup copy. Files are copied after the snapshot: attachments and DICOM files are
written before the row that names them is committed and never rewritten, so every file a dumped row names is
in the copy (a few newer ones may be too).

Restore goes into an empty database only (refuses one with tables), checks every checksum first, and with
`--verify` compares the restored row counts and decrypted samples with the manifest, decrypting with the
keys the restored installation will use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.engine import Connection, make_url

from yilianti.config import Settings, normalise_db_url
from yilianti.ops import repository

FORMAT = "yilianti-backup/1"
SAMPLE_ROWS = 20
KEY_FILES = ("data.keys", "index.key", "secret.key")


class BackupError(Exception):
    """A backup or restore that cannot go on (exit code 2), with the reason for the operator."""


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    samples: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


# ----------------------------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq connection arguments and environment (the password in PGPASSWORD, never on the command line)."""
    u = make_url(normalise_db_url(url))
    args = ["--dbname", u.database or ""]
    if u.host:
        args += ["--host", u.host]
    if u.port:
        args += ["--port", str(u.port)]
    if u.username:
        args += ["--username", u.username]
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return args, env


def _engine(url: str) -> Engine:
    from yilianti.db import make_engine

    return make_engine(url, timeouts=False)


def _tables() -> list[Table]:
    import yilianti.models  # noqa: F401 - every model registers its table
    from yilianti.models.base import Base

    return list(Base.metadata.sorted_tables)


def _encrypted_columns(table: Table) -> list[str]:
    from yilianti.kit.crypto import Encrypted

    return [c.name for c in table.columns if isinstance(c.type, Encrypted)]


def _digest(rows: list[Any]) -> str:
    return hashlib.sha256(json.dumps([list(r) for r in rows], ensure_ascii=False, default=str).encode()).hexdigest()


def _samples(conn: Connection, tables: list[Table]) -> dict[str, dict[str, Any]]:
    """The first rows of every table with encrypted columns: their ids, and a digest of the decrypted values."""
    out: dict[str, dict[str, Any]] = {}
    for t in tables:
        columns = _encrypted_columns(t)
        if not columns or len(t.primary_key.columns) != 1:
            continue
        rows = repository.sample(conn, t, columns, limit=SAMPLE_ROWS)
        if rows:
            out[t.name] = {"ids": [r[0] for r in rows], "columns": columns, "sha256": _digest(rows)}
    return out


def _file_dirs(settings: Settings) -> dict[str, Path]:
    return {"attachments": settings.attachments_dir or (settings.var_dir / "attachments"),
            "dicom": settings.var_dir / "dicom"}


def _copy_tree(src: Path, dst: Path) -> None:
    if not src.is_dir():
        return
    for path in sorted(src.rglob("*")):
        if path.is_file() and not path.name.endswith(".part") and not path.name.startswith(".up-"):
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


# ------------------------------------------------------------------------------------------------ backup


def backup(output: Path, settings: Settings) -> dict[str, Any]:
    """Write a backup of the installation `settings` describe into `output` (absent or empty)."""
    if output.exists() and any(output.iterdir()):
        raise BackupError(f"{output} is not empty: give a new directory")
    output.mkdir(parents=True, exist_ok=True)
    output.chmod(0o700)
    url = normalise_db_url(settings.database_url)
    tables = _tables()
    manifest: dict[str, Any] = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    engine = _engine(url)
    try:
        if url.startswith("sqlite"):
            manifest["database"] = "sqlite"
            source = make_url(url).database or ""
            target = output / "database.sqlite3"
            with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
                src.backup(dst)  # SQLite's online backup: a consistent copy while the platform runs
            copy = _engine(f"sqlite:///{target}")
            try:
                with copy.connect() as conn:
                    manifest.update(revision=repository.revision(conn), counts=repository.counts(conn, tables),
                                    samples=_samples(conn, tables))
            finally:
                copy.dispose()
        else:
            manifest["database"] = "postgresql"
            with engine.connect() as conn:
                snapshot = repository.export_snapshot(conn)
                manifest.update(revision=repository.revision(conn), counts=repository.counts(conn, tables),
                                samples=_samples(conn, tables))
                args, env = _pg_args(url)
                done = subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--snapshot={snapshot}",
                                       "--file", str(output / "database.dump"), *args],
                                      env=env, capture_output=True, text=True)
                conn.rollback()
                if done.returncode != 0:
                    raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
    finally:
        engine.dispose()
    for name, folder in _file_dirs(settings).items():
        _copy_tree(folder, output / "files" / name)
    keys = output / "keys"
    keys.mkdir(mode=0o700)
    for name, value in (("data.keys", "\n".join(settings.resolved_data_keys()) + "\n"),
                        ("index.key", settings.resolved_index_key() + "\n"),
                        ("secret.key", settings.resolved_secret_key() + "\n")):
        path = keys / name
        path.write_text(value, encoding="utf-8")
        path.chmod(0o600)
    manifest["files"] = {str(p.relative_to(output)): {"sha256": _sha256(p), "bytes": p.stat().st_size}
                         for p in sorted(output.rglob("*")) if p.is_file()}
    (output / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


# ----------------------------------------------------------------------------------------------- restore


def read_manifest(source: Path) -> dict[str, Any]:
    path = source / "manifest.json"
    if not path.is_file():
        raise BackupError(f"{source} holds no manifest.json: not a backup")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    return dict(manifest)


def check_files(source: Path, manifest: dict[str, Any]) -> list[str]:
    """Files missing, changed or added since the backup was written."""
    problems = []
    listed = manifest.get("files", {})
    for rel, meta in listed.items():
        path = source / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif path.stat().st_size != meta["bytes"] or _sha256(path) != meta["sha256"]:
            problems.append(f"checksum differs: {rel}")
    for path in source.rglob("*"):
        rel = str(path.relative_to(source))
        if path.is_file() and rel != "manifest.json" and rel not in listed:
            problems.append(f"not in the manifest: {rel}")
    return problems


def _empty(url: str) -> bool:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return not repository.table_names(conn)
    finally:
        engine.dispose()


def _restore_keys(source: Path, settings: Settings) -> list[str]:
    """Key files into the var directory, unless the environment gives the key (the site's secret store) or
    the same file is there; a different file already there stops the restore."""
    given = {"data.keys": settings.data_keys, "index.key": settings.index_key, "secret.key": settings.secret_key}
    written = []
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    for name in KEY_FILES:
        src = source / "keys" / name
        if not src.is_file() or given[name]:
            continue
        dst = settings.var_dir / name
        if dst.exists():
            if dst.read_text(encoding="utf-8").strip() != src.read_text(encoding="utf-8").strip():
                raise BackupError(f"{dst} differs from the backup's key: move it away or restore into a new "
                                  "YILIANTI_VAR_DIR")
            continue
        shutil.copy2(src, dst)
        dst.chmod(0o600)
        written.append(str(dst))
    return written


def restore(source: Path, settings: Settings) -> dict[str, Any]:
    """Restore the backup in `source` into the (empty) database and directories `settings` describe."""
    manifest = read_manifest(source)
    problems = check_files(source, manifest)
    if problems:
        raise BackupError("the backup is damaged: " + "; ".join(problems[:10]))
    url = normalise_db_url(settings.database_url)
    kind = "sqlite" if url.startswith("sqlite") else "postgresql"
    if kind != manifest["database"]:
        raise BackupError(f"a {manifest['database']} backup cannot be restored into {kind}")
    if url.startswith("sqlite"):
        target = Path(make_url(url).database or "")
        if target.exists() and not _empty(url):
            raise BackupError(f"the database {target} is not empty: restore into an empty database")
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        with sqlite3.connect(source / "database.sqlite3") as src, sqlite3.connect(target) as dst:
            src.backup(dst)
    else:
        if not _empty(url):
            raise BackupError("the database is not empty: restore into an empty database (createdb first)")
        args, env = _pg_args(url)
        done = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
                               "--single-transaction", *args, str(source / "database.dump")],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
    for name, folder in _file_dirs(settings).items():
        _copy_tree(source / "files" / name, folder)
    return {"database": kind, "revision": manifest.get("revision"), "keys_written": _restore_keys(source, settings)}


def verify(source: Path, settings: Settings) -> Verification:
    """The restored database against the manifest: every table's row count, and the decrypted samples
    (with the keys this installation now resolves)."""
    from yilianti.kit import crypto

    manifest = read_manifest(source)
    result = Verification()
    crypto.reset()  # the keys as restored
    engine = _engine(normalise_db_url(settings.database_url))
    by_name = {t.name: t for t in _tables()}
    try:
        with engine.connect() as conn:
            if repository.revision(conn) != manifest.get("revision"):
                result.problems.append(f"schema revision {repository.revision(conn)} != {manifest.get('revision')}")
            counts = repository.counts(conn, [by_name[n] for n in manifest["counts"] if n in by_name])
            for name, expected in manifest["counts"].items():
                result.tables += 1
                result.rows += counts.get(name, 0)
                if counts.get(name) != expected:
                    result.problems.append(f"{name}: {counts.get(name)} rows, the backup has {expected}")
            for name, sample in manifest.get("samples", {}).items():
                result.samples += len(sample["ids"])
                try:
                    got = _digest(repository.sample(conn, by_name[name], sample["columns"], sample["ids"]))
                except Exception as exc:  # e.g. InvalidToken: the keys do not read the data
                    result.problems.append(f"{name}: the encrypted fields cannot be read ({type(exc).__name__})")
                    continue
                if got != sample["sha256"]:
                    result.problems.append(f"{name}: decrypted sample differs from the backup's")
    finally:
        engine.dispose()
    return result
