"""Personal data at rest: resident IDs, other identifier values and phone numbers are encrypted,
found by exact value through a blind index, masked in lists and in the audit log; key rotation."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from tests import builders as b
from yilianti.config import get_settings
from yilianti.exceptions import InvalidInput
from yilianti.kit import crypto
from yilianti.models.audit import AuditEvent
from yilianti.models.empi import PatientRecord
from yilianti.models.patient import Authority, Patient, PatientIdentifier
from yilianti.patients import keys as key_rotation
from yilianti.web.render import mask_id, mask_phone

TABLES = ("patient", "patient_identifier", "patient_record")


def _raw_text(db, table: str) -> str:  # type: ignore[no-untyped-def]
    """Every value of every row of a table, as raw SQL returns it."""
    return "\n".join("|".join(str(v) for v in row) for row in db.execute(text(f"SELECT * FROM {table}")))


@pytest.fixture
def keys_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change YILIANTI_DATA_KEYS / YILIANTI_INDEX_KEY within a test; the caches are reset either way."""

    def _reset() -> None:
        get_settings.cache_clear()
        crypto.reset()

    yield monkeypatch
    monkeypatch.undo()
    _reset()


def _set_keys(monkeypatch: pytest.MonkeyPatch, data: list[str] | None = None, index: str | None = None) -> None:
    if data is not None:
        monkeypatch.setenv("YILIANTI_DATA_KEYS", ",".join(data))
    if index is not None:
        monkeypatch.setenv("YILIANTI_INDEX_KEY", index)
    get_settings.cache_clear()
    crypto.reset()


def _world(db):  # type: ignore[no-untyped-def]
    township = b.institution(db, "渠口镇卫生院", kind="township", level=1, province="河北")
    county = b.institution(db, "香河县人民医院", province="河北")
    b.alliance(db, (county, "lead"), (township, "member"))
    return township, county, b.subject_for(db, b.user(db, township, "doctor")), \
        b.subject_for(db, b.user(db, county, "doctor"))


def test_identifiers_and_phones_are_not_stored_in_clear(db):  # type: ignore[no-untyped-def]
    _, _, doctor, _ = _world(db)
    rid = b.resident_id(region="131024")
    p = b.patient(db, doctor, name="赵一鸣", resident_id=rid, phone="13912345678", mrn="QK-000123",
                  insurance_no="HB1310240099", guardian_name="赵强", guardian_relation="父亲",
                  guardian_phone="13612345678")
    db.flush()
    for table in TABLES:
        raw = _raw_text(db, table)
        for secret in (rid, rid[:17], "13912345678", "13612345678", "QK-000123", "HB1310240099"):
            assert secret not in raw, (table, secret)
    # the application still reads the values in clear
    db.expire_all()
    again = db.get(Patient, p.id)
    assert (again.phone, again.guardian_phone) == ("13912345678", "13612345678")
    values = {i.authority: i.value for i in db.scalars(select(PatientIdentifier).where(
        PatientIdentifier.patient_id == p.id))}
    assert values[Authority.resident_id] == rid and values[Authority.insurance] == "HB1310240099"
    rec = db.scalar(select(PatientRecord).where(PatientRecord.patient_id == p.id))
    assert (rec.rid, rec.phone) == (rid, "13912345678")


def test_exact_search_by_resident_id_or_phone_finds_the_patient(db, client):  # type: ignore[no-untyped-def]
    township, _, doctor, _ = _world(db)
    b.user(db, township, "doctor", username="qk_doc")
    rid = b.resident_id(region="131024")
    p = b.patient(db, doctor, name="钱晓梅", resident_id=rid, phone="13912345678")
    other = b.patient(db, doctor, name="孙大海", phone="13700001111")
    b.login(client, "qk_doc")
    for q in (rid, rid.lower(), f" {rid} ", "13912345678", "+86 139 1234 5678", "139-1234-5678"):
        found = [r["id"] for r in client.get("/api/v1/patients", params={"q": q}).json()]
        assert found == [p.id], q
    assert [r["id"] for r in client.get("/api/v1/patients", params={"q": "1391234567"}).json()] == []
    # the list page masks the phone; the search text in the audit log is masked too
    page = client.get("/patients", params={"q": "13912345678"})
    assert "钱晓梅" in page.text and "139****5678" in page.text and "孙大海" not in page.text
    # shown nowhere but where it was typed: the search box, and the list's own links that carry the search
    assert "13912345678" not in re.sub(r'href="[^"]*"', "", page.text.replace('value="13912345678"', ""))
    detail = [e.detail for e in db.scalars(select(AuditEvent).where(AuditEvent.action == "search"))]
    assert detail and all(rid not in str(d) and "13912345678" not in str(d) for d in detail)
    assert any(d.get("q") == "*******5678" for d in detail)
    assert other.id != p.id


def test_duplicate_resident_id_is_still_the_same_person_or_refused(db):  # type: ignore[no-untyped-def]
    _, _, d1, d2 = _world(db)
    rid = b.resident_id(region="131024")
    first = b.patient(db, d1, name="赵一鸣", resident_id=rid, insurance_no="HB0001")
    second = b.patient(db, d2, name="赵一鸣", resident_id=rid.lower())  # same ID, other member, lower-case x
    assert second.id == first.id
    assert db.scalar(select(PatientIdentifier.patient_id).where(PatientIdentifier.value == rid)) == first.id
    other = b.patient(db, d2, name="完全不同", resident_id=rid)  # another name: a new person, to identity review
    assert other.id != first.id
    assert db.scalar(select(PatientIdentifier.patient_id).where(PatientIdentifier.value == rid)) == first.id
    with pytest.raises(InvalidInput) as err:
        b.patient(db, d2, name="另一人", insurance_no="hb0001")  # another person's insurance number
    assert "insurance_no" in err.value.fields


def test_rotation_re_encrypts_every_value_under_the_newest_key(db, keys_env):  # type: ignore[no-untyped-def]
    _, _, doctor, _ = _world(db)
    rid = b.resident_id(region="131024")
    p = b.patient(db, doctor, name="李四海", resident_id=rid, phone="13912345678", guardian_phone="13612345678")
    db.flush()
    before = {t: _raw_text(db, t) for t in TABLES}
    old = get_settings().resolved_data_keys()[0]
    new = Fernet.generate_key().decode()
    _set_keys(keys_env, data=[new, old])
    db.expire_all()
    assert db.get(Patient, p.id).phone == "13912345678"  # old ciphertexts still decrypt before rotation
    out = io.StringIO()
    done = key_rotation.rotate_all(db.connection(), out=out)
    assert done["patient.phone_enc"] >= 1 and done["patient.guardian_phone"] >= 1
    assert done["patient_identifier.value_enc"] >= 1 and done["patient_record.rid"] >= 1
    assert "patient_identifier:" in out.getvalue() and "rows" in out.getvalue()
    assert all(_raw_text(db, t) != before[t] for t in TABLES)
    _set_keys(keys_env, data=[new])  # the old key is gone: everything must be readable with the new one
    db.expire_all()
    again = db.get(Patient, p.id)
    assert (again.phone, again.guardian_phone) == ("13912345678", "13612345678")
    assert db.scalar(select(PatientIdentifier.patient_id).where(PatientIdentifier.value == rid)) == p.id
    for table, cols in key_rotation.encrypted_columns():
        for col in cols:
            for (token,) in db.execute(text(f"SELECT {col} FROM {table.name} WHERE {col} IS NOT NULL")):
                assert crypto.is_current(token), (table.name, col)
    # a second run has nothing left to do
    assert sum(key_rotation.rotate_all(db.connection(), out=io.StringIO()).values()) == 0


def test_reindex_after_the_index_key_changed(db, keys_env):  # type: ignore[no-untyped-def]
    _, _, doctor, _ = _world(db)
    rid = b.resident_id(region="131024")
    p = b.patient(db, doctor, name="周小川", resident_id=rid, phone="13912345678")
    db.flush()
    _set_keys(keys_env, index="another-index-key")
    assert db.scalar(select(Patient.id).where(Patient.phone == "13912345678")) is None
    key_rotation.rotate_all(db.connection(), reindex=True, out=io.StringIO())
    assert db.scalar(select(Patient.id).where(Patient.phone == "13912345678")) == p.id
    assert db.scalar(select(PatientIdentifier.patient_id).where(PatientIdentifier.value == rid)) == p.id


def test_keys_rotate_command(tmp_path, monkeypatch, keys_env, capsys):  # type: ignore[no-untyped-def]
    from sqlalchemy.orm import Session

    from yilianti import cli
    from yilianti import db as dbmod

    url = f"sqlite:///{tmp_path}/rotate.db"
    old = Fernet.generate_key().decode()
    keys_env.setenv("YILIANTI_DATABASE_URL", url)
    _set_keys(keys_env, data=[old], index="cli-index-key")
    assert cli.main(["migrate"]) == 0
    engine = dbmod.make_engine(url)
    with Session(engine) as s:
        inst = b.institution(s, "渠口镇卫生院", kind="township", level=1)
        doctor = b.subject_for(s, b.user(s, inst, "doctor"))
        rid = b.resident_id(region="131024")
        b.patient(s, doctor, name="吴一凡", resident_id=rid, phone="13912345678")
        s.commit()
    new = Fernet.generate_key().decode()
    _set_keys(keys_env, data=[new, old])
    capsys.readouterr()
    assert cli.main(["keys", "rotate"]) == 0
    captured = capsys.readouterr()
    assert "keys rotate: patient:" in captured.err and "re-encrypted under the newest key" in captured.out
    _set_keys(keys_env, data=[new])
    with Session(engine) as s:
        p = s.scalar(select(Patient).where(Patient.phone == "13912345678"))
        assert p is not None and p.phone == "13912345678"
        assert s.scalar(select(PatientIdentifier.value).where(PatientIdentifier.value == rid)) == rid
    engine.dispose()
    assert os.environ["YILIANTI_DATA_KEYS"] == new


def test_masks_never_show_a_whole_number() -> None:
    assert mask_id("110105194912310021") == "110105********0021"
    assert mask_id("QK-000123") == "*****0123"
    assert mask_phone("13912345678") == "139****5678"
    assert mask_phone("0316-5212345") == "031*****2345"
    assert "5212345" not in mask_phone("03165212345x")
