"""Migration 0014 converts the rows already stored in clear (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti import db as dbmod
from yilianti.empi import online
from yilianti.migrate import alembic_config, upgrade
from yilianti.models.empi import PatientRecord
from yilianti.models.patient import Patient, PatientIdentifier


def test_existing_rows_are_encrypted_and_still_found(test_db):  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url, revision="0013")
    engine = dbmod.make_engine(url)
    rid = b.resident_id(region="131024")
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        with Session(engine) as s:
            inst = b.institution(s, "渠口镇卫生院", kind="township", level=1)
            s.commit()
            inst_id = inst.id
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO patient (id, name, sex, birth_date, phone, guardian_phone, registered_by_institution_id,"
                " active, created_at) VALUES (1, '赵一鸣', '男', '2015-03-08', '139 1234 5678', '13612345678', :i,"
                " :t, :now)"), {"i": inst_id, "t": True, "now": now})
            conn.execute(text("INSERT INTO patient_identifier (patient_id, authority, value, created_at)"
                              " VALUES (1, 'CN-RIC', :rid, :now), (1, 'MRN:1', 'QK-000123', :now)"),
                         {"rid": rid, "now": now})
            conn.execute(text(
                "INSERT INTO patient_record (patient_id, institution_id, name, sex, birth_date, phone, rid, phone_key,"
                " link_method, rules_version, updated_at, created_at) VALUES (1, :i, '赵一鸣', '男', '2015-03-08',"
                " '139 1234 5678', :rid, '13912345678', 'new', 'v1', :now, :now)"),
                {"i": inst_id, "rid": rid, "now": now})
        upgrade(url)
        with engine.connect() as conn:
            raw = "\n".join(str(r) for t in ("patient", "patient_identifier", "patient_record")
                            for r in conn.execute(text(f"SELECT * FROM {t}")))
        for secret in (rid, "13912345678", "139 1234 5678", "13612345678", "QK-000123"):
            assert secret not in raw, secret
        with Session(engine) as s:
            assert s.scalar(select(PatientIdentifier.patient_id).where(PatientIdentifier.value == rid.lower())) == 1
            assert s.scalar(select(PatientIdentifier.value).where(PatientIdentifier.value == "qk-000123")) \
                == "QK-000123"
            p = s.scalar(select(Patient).where(Patient.phone == "13912345678"))
            assert p is not None and (p.phone, p.guardian_phone) == ("139 1234 5678", "13612345678")
            rec = s.scalar(select(PatientRecord))
            assert (rec.rid, rec.phone) == (rid, "139 1234 5678")
            # the EMPI phone block still finds the record by the new (indexed) key
            demo = online.Demographics("赵一鸣", "男", None, "13912345678", None, None)
            assert rec.phone_key == online.keys(demo.normalised()).phone_key
        # and back: the downgrade restores the values in clear
        command.downgrade(alembic_config(url), "0013")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT phone, guardian_phone FROM patient")).one() == \
                ("139 1234 5678", "13612345678")
            assert set(conn.scalars(text("SELECT value FROM patient_identifier"))) == {rid, "QK-000123"}
            assert conn.execute(text("SELECT rid, phone_key FROM patient_record")).one() == (rid, "13912345678")
    finally:
        engine.dispose()
