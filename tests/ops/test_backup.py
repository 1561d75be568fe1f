"""`yilianti backup` / `yilianti restore --verify`, round trip on the suite's database (SQLite, and PostgreSQL
on its pass): the restored database has every row of the backup and decrypts the same personal data; a
damaged backup, a database that is not empty and a changed restore are refused or reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.config import Settings, get_settings
from yilianti.db import make_engine
from yilianti.migrate import upgrade
from yilianti.ops.backup import BackupError, backup, restore, verify


def _installation(test_db: Any, tmp_path: Path, name: str) -> Settings:
    """A database of its own (committed for real) and an attachments directory; the suite's keys."""
    return get_settings().model_copy(update={"database_url": test_db.new_database_url(),
                                             "attachments_dir": tmp_path / name / "attachments"})


def _fill(settings: Settings) -> int:
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            inst = b.institution(db, "备份测试医院")
            doctor = b.user(db, inst, "doctor")
            subject = b.subject_for(db, doctor)
            for i, name in enumerate(("备份甲", "备份乙", "备份丙")):
                b.patient(db, subject, name=name, phone=f"1390000000{i}", resident_id=b.resident_id(seq=10 + i))
            db.commit()
            patients = int(db.execute(text("SELECT count(*) FROM patient")).scalar_one())
    finally:
        engine.dispose()
    assert settings.attachments_dir is not None
    (settings.attachments_dir / "ab").mkdir(parents=True)
    (settings.attachments_dir / "ab" / "abcdef").write_bytes(b"%PDF-1.4 report")
    return patients


def test_round_trip_restores_rows_files_and_readable_personal_data(test_db: Any, tmp_path: Path) -> None:
    source = _installation(test_db, tmp_path, "source")
    patients = _fill(source)
    out = tmp_path / "backup"
    manifest = backup(out, source)
    assert manifest["counts"]["patient"] == patients >= 3
    assert "patient" in manifest["samples"]  # encrypted phone numbers, as digests of the decrypted values
    assert "13900000001" not in (out / "manifest.json").read_text(encoding="utf-8")
    assert (out / "keys" / "data.keys").stat().st_mode & 0o077 == 0
    assert "files/attachments/ab/abcdef" in manifest["files"]

    target = _installation(test_db, tmp_path, "target")
    done = restore(out, target)
    assert done["revision"] == manifest["revision"]
    result = verify(out, target)
    assert result.ok, result.problems
    assert result.samples >= 3 and result.rows == sum(manifest["counts"].values())
    assert target.attachments_dir is not None
    assert (target.attachments_dir / "ab" / "abcdef").read_bytes() == b"%PDF-1.4 report"

    with pytest.raises(BackupError, match="not empty"):  # never over a database in use
        restore(out, target)

    engine = make_engine(target.database_url)  # a row lost after the restore is reported
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO notification (kind, title, urgent, created_at) "
                          "VALUES ('info', 'after the backup', false, CURRENT_TIMESTAMP)"))
        conn.execute(text("UPDATE patient SET phone_enc = NULL WHERE id = (SELECT min(id) FROM patient)"))
    engine.dispose()
    problems = verify(out, target).problems
    assert any(p.startswith("patient: decrypted sample differs") for p in problems), problems
    assert any(p.startswith("notification: 1 rows, the backup has 0") for p in problems), problems


def test_a_damaged_backup_or_a_used_directory_is_refused(test_db: Any, tmp_path: Path) -> None:
    source = _installation(test_db, tmp_path, "source")
    _fill(source)
    out = tmp_path / "backup"
    backup(out, source)
    with pytest.raises(BackupError, match="not empty"):
        backup(out, source)
    (out / "files" / "attachments" / "ab" / "abcdef").write_bytes(b"%PDF-1.4 altered")
    with pytest.raises(BackupError, match="checksum differs: files/attachments/ab/abcdef"):
        restore(out, _installation(test_db, tmp_path, "target"))
