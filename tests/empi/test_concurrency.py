"""Simultaneous registrations of the same new person end as ONE person — with real commits.

A database of its own (PostgreSQL in the CI pass: advisory locks on the resident ID and the
name key; a SQLite file otherwise: one writer at a time).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from tests import builders as b
from yilianti import db as dbmod
from yilianti.migrate import upgrade
from yilianti.models.empi import PatientRecord
from yilianti.models.patient import Patient, PatientIdentifier
from yilianti.patients import service as patients


@pytest.fixture(scope="module")
def committed(test_db):  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url)
    engine = dbmod.make_engine(url, **({"pool_size": 12, "max_overflow": 4} if "postgresql" in url else {}))
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def _race(factory, subjects, payload):  # type: ignore[no-untyped-def]
    n = len(subjects)
    barrier = threading.Barrier(n)
    ids: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        with factory() as db:
            try:
                pid = patients.register(db, subjects[i], patients.RegistrationIn(**payload)).patient.id
                db.commit()
                with lock:
                    ids.append(pid)
            except Exception as exc:  # noqa: BLE001 — any failure is a test failure, reported below
                db.rollback()
                with lock:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return ids, errors


def _members(factory, tag: str, n: int):  # type: ignore[no-untyped-def]
    with factory() as db:
        subjects = [b.subject_for(db, b.user(db, b.institution(db, f"并发{tag}医院{i}"), "doctor")) for i in range(n)]
        db.commit()
    return subjects


def test_same_new_resident_id_registered_at_once_is_one_person(committed):  # type: ignore[no-untyped-def]
    subjects = _members(committed, "甲", 8)
    rid = b.resident_id(date(2019, 7, 1), region="131024", seq=61)
    ids, errors = _race(committed, subjects, {"name": "韩梅梅", "resident_id": rid, "phone": "13755556666",
                                              "consent_scope": "none"})
    assert errors == [] and len(ids) == 8
    assert len(set(ids)) == 1
    with committed() as db:
        owners = db.scalars(select(PatientIdentifier.patient_id).where(PatientIdentifier.value == rid)).all()
        assert owners == [ids[0]]
        assert db.scalar(select(func.count()).select_from(PatientRecord).where(PatientRecord.patient_id == ids[0])) == 8


def test_same_new_person_without_an_id_registered_at_once_is_one_person(committed):  # type: ignore[no-untyped-def]
    subjects = _members(committed, "乙", 6)
    ids, errors = _race(committed, subjects, {"name": "司马小楠", "sex": "女", "birth_date": "2018-02-03",
                                              "phone": "13644445555", "address": "河北省廊坊市香河县安平镇北街3号",
                                              "consent_scope": "none"})
    assert errors == [] and Counter(ids).most_common(1)[0][1] == 6
    with committed() as db:
        assert db.scalar(select(func.count()).select_from(Patient).where(Patient.name == "司马小楠")) == 1
