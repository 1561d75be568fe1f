"""Commercial cryptography (GB/T 39786): YILIANTI_CRYPTO_SUITE=sm stores personal data as SM4-GCM and
indexes it with HMAC-SM3; `yilianti keys rotate` migrates between the suites and keys, resumably."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti import cli
from yilianti import db as dbmod
from yilianti.config import get_settings
from yilianti.kit import crypto
from yilianti.models.patient import Patient, PatientIdentifier
from yilianti.patients import keys as key_rotation

RAW_TOKENS = "SELECT phone_enc FROM patient UNION ALL SELECT value_enc FROM patient_identifier"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()
    crypto.reset()


def _set(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"YILIANTI_{name.upper()}", value)
    get_settings.cache_clear()
    crypto.reset()


def _doctor(db):  # type: ignore[no-untyped-def]
    township = b.institution(db, "渠口镇卫生院", kind="township", level=1, province="河北")
    return b.subject_for(db, b.user(db, township, "doctor"))


def _hmac_sm3(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


def test_sm_suite_stores_sm4_gcm_and_finds_by_hmac_sm3(db, env) -> None:  # type: ignore[no-untyped-def]
    data_key, index_key = Fernet.generate_key().decode(), "sm-index-key"
    _set(env, crypto_suite="sm", data_keys=data_key, index_key=index_key)
    rid = b.resident_id(region="131024")
    p = b.patient(db, _doctor(db), name="欧阳明", resident_id=rid, phone="13912345678")
    db.flush()
    tokens = [t for (t,) in db.execute(text(RAW_TOKENS)) if t]
    assert tokens and all(t.startswith("sm4:") for t in tokens)
    # the phone decrypts with SM4-GCM under the key derived from the data key (no help from the application)
    token = db.scalar(text("SELECT phone_enc FROM patient WHERE id = :id"), {"id": p.id})
    raw = base64.urlsafe_b64decode(token[4:])
    key = _hmac_sm3(base64.urlsafe_b64decode(data_key), b"yilianti/sm4-field-key/v1")[:16]
    dec = Cipher(algorithms.SM4(key), modes.GCM(raw[4:16], raw[-16:])).decryptor()
    assert dec.update(raw[16:-16]) + dec.finalize() == b"13912345678"
    # the blind index is HMAC-SM3 of the normalised value
    stored = db.scalar(text("SELECT phone_bidx FROM patient WHERE id = :id"), {"id": p.id})
    assert stored == _hmac_sm3(index_key.encode(), b"phone\x1f13912345678").hex()[:32]
    db.expire_all()
    assert db.scalar(select(Patient.id).where(Patient.phone == "+86 139 1234 5678")) == p.id
    assert db.scalar(select(PatientIdentifier.patient_id).where(PatientIdentifier.value == rid.lower())) == p.id
    assert db.get(Patient, p.id).phone == "13912345678"


def test_rotate_migrates_standard_to_sm_and_back(db, env) -> None:  # type: ignore[no-untyped-def]
    key = Fernet.generate_key().decode()
    _set(env, crypto_suite="standard", data_keys=key, index_key="idx")
    rid = b.resident_id(region="131024")
    p = b.patient(db, _doctor(db), name="李四海", resident_id=rid, phone="13912345678", guardian_phone="13612345678")
    db.flush()
    _set(env, crypto_suite="sm")
    db.expire_all()
    assert db.get(Patient, p.id).phone == "13912345678"  # old tokens still read under the new suite
    assert db.scalar(select(Patient.id).where(Patient.phone == "13912345678")) is None  # index not yet migrated
    out = io.StringIO()
    done = key_rotation.rotate_all(db.connection(), out=out)
    assert done["patient.phone_enc"] == 1 and done["patient_identifier.value_enc"] >= 1
    assert "keys rotate: patient:" in out.getvalue()
    assert all(t.startswith("sm4:") for (t,) in db.execute(text(RAW_TOKENS)) if t)
    assert db.scalar(select(Patient.id).where(Patient.phone == "13912345678")) == p.id
    assert db.scalar(select(PatientIdentifier.patient_id).where(PatientIdentifier.value == rid)) == p.id
    assert sum(key_rotation.rotate_all(db.connection(), out=io.StringIO()).values()) == 0  # nothing left
    # and back to the standard suite under a new key
    new = Fernet.generate_key().decode()
    _set(env, crypto_suite="standard", data_keys=f"{new},{key}")
    key_rotation.rotate_all(db.connection(), out=io.StringIO())
    _set(env, data_keys=new)  # the old key is gone: everything readable and found with the new one
    db.expire_all()
    again = db.get(Patient, p.id)
    assert (again.phone, again.guardian_phone) == ("13912345678", "13612345678")
    assert not any(t.startswith("sm4:") for (t,) in db.execute(text(RAW_TOKENS)) if t)
    assert db.scalar(select(Patient.id).where(Patient.phone == "13912345678")) == p.id


def test_an_interrupted_rotation_leaves_every_row_whole_and_resumes(tmp_path, env, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/rotate.db"
    _set(env, database_url=url, crypto_suite="standard", data_keys=Fernet.generate_key().decode(), index_key="i")
    assert cli.main(["migrate"]) == 0
    engine = dbmod.make_engine(url)
    phones = [f"1391234{i:04d}" for i in range(7)]
    with Session(engine) as s:
        doctor = _doctor(s)
        ids = [b.patient(s, doctor, name="张三李四王五赵六钱七孙八周九"[i:i + 2], resident_id=b.resident_id(region="131024"), phone=ph).id
               for i, ph in enumerate(phones)]
        s.commit()
    _set(env, crypto_suite="sm")
    env.setattr(key_rotation, "BATCH", 3)
    calls = {"n": 0}
    real = crypto.rotate

    def failing(token: str) -> str:
        calls["n"] += 1
        if calls["n"] == 5:  # inside the patient table's second batch of three
            raise KeyboardInterrupt
        return real(token)

    env.setattr(crypto, "rotate", failing)
    with pytest.raises(KeyboardInterrupt):
        cli.main(["keys", "rotate"])
    env.setattr(crypto, "rotate", real)
    with Session(engine) as s:  # the first batch is done, the interrupted one rolled back: no row half-written
        rows = s.execute(text("SELECT id, phone_enc, phone_bidx FROM patient ORDER BY id")).all()
        migrated = [r.id for r in rows if r.phone_enc.startswith("sm4:")]
        assert migrated == ids[:3]
        for r in rows:
            assert (r.phone_bidx == crypto.blind_index("phone", phones[ids.index(r.id)])) == (r.id in migrated)
            assert crypto.decrypt(r.phone_enc) == phones[ids.index(r.id)]
    capsys.readouterr()
    assert cli.main(["keys", "rotate"]) == 0  # started again, it finishes
    assert "keys rotate: patient: 7/7 rows" in capsys.readouterr().err
    with Session(engine) as s:
        assert all(t.startswith("sm4:") for (t,) in s.execute(text(RAW_TOKENS)) if t)
        assert [s.scalar(select(Patient.id).where(Patient.phone == ph)) for ph in phones] == ids
    engine.dispose()


def test_serve_and_worker_refuse_to_start_under_keys_that_cannot_read_the_data(tmp_path, env, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/keys.db"
    written_with = Fernet.generate_key().decode()
    _set(env, database_url=url, data_keys=written_with, index_key="i")
    assert cli._keys_fit()  # not migrated yet: nothing stored
    assert cli.main(["migrate"]) == 0
    assert cli._keys_fit()  # an empty database fits any keys
    engine = dbmod.make_engine(url)
    with Session(engine) as s:
        b.patient(s, _doctor(s), name="吴一凡", resident_id=b.resident_id(region="131024"), phone="13912345678")
        s.commit()
    engine.dispose()
    assert cli._keys_fit()
    _set(env, data_keys=Fernet.generate_key().decode())  # e.g. var/data.keys lost and generated anew
    capsys.readouterr()
    assert cli.main(["serve"]) == 2
    assert cli.main(["worker"]) == 2
    err = capsys.readouterr().err
    assert "error: not starting: patient_identifier row 1 was encrypted under a key that YILIANTI_DATA_KEYS" in err
    _set(env, data_keys=f"{Fernet.generate_key().decode()},{written_with}", crypto_suite="sm")  # a new key first
    assert cli._keys_fit()  # readable: it starts, and warns that the indexes wait for `keys rotate`
    with dbmod.make_engine(url).connect() as conn:
        assert "keys rotate" in (key_rotation.stale_index_warning(conn) or "")
