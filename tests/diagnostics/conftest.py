"""Diagnostics receivers commit for real: a database of their own, yilianti.db pointed at it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests import builders as b
from yilianti import db as dbmod
from yilianti.migrate import upgrade
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import Patient, PatientIdentifier


@pytest.fixture(scope="module")
def committed(test_db) -> Iterator[sessionmaker[Session]]:  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url)
    engine = dbmod.make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    old_factory, old_engine = dbmod._factory, dbmod._engine
    dbmod.set_session_factory(factory, engine)
    yield factory
    dbmod._factory, dbmod._engine = old_factory, old_engine
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_order(factory: sessionmaker[Session], accession: str, kind: str = "lab", modality: str | None = None,
               name: str = "张三丰", resident_id: str = "110105196501010011") -> tuple[int, int]:
    """A township order read by the county centre; returns (order id, patient id)."""
    with factory() as db:
        township = b.institution(db, f"渠口镇卫生院{accession}", kind="grassroots", level=1)
        county = b.institution(db, f"香河县人民医院{accession}", level=2)
        patient = Patient(name=name, sex="男", birth_date=date(1965, 1, 1), registered_by_institution_id=township.id)
        db.add(patient)
        db.flush()
        db.add(PatientIdentifier(patient_id=patient.id, authority="CN-RIC", value=resident_id))
        order = DiagnosticOrder(accession_number=accession, patient_id=patient.id,
                                ordering_institution_id=township.id, reading_centre_institution_id=county.id,
                                kind=kind, modality=modality, item_code="LAB001" if kind == "lab" else "CT001",
                                item_name="血常规" if kind == "lab" else "胸部CT平扫")
        db.add(order)
        db.commit()
        return order.id, patient.id
