"""Read audits of the hot paths reach the audit log in batches: by the flusher, and at shutdown."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from tests import builders as b
from yilianti import db as dbmod
from yilianti.audit import batch
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.fastdb import pool as fastpool
from yilianti.migrate import upgrade
from yilianti.models import AuditEvent

pytestmark = pytest.mark.skipif(os.environ.get("YILIANTI_TEST_BACKEND") != "postgresql",
                                reason="the batched read audit serves the PostgreSQL hot paths")


@pytest.fixture()
def pg(test_db):  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url)
    settings = get_settings()
    saved = (settings.database_url, settings.audit_flush_seconds)
    settings.database_url, settings.audit_flush_seconds = url, 0.2
    engine = dbmod.make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    try:
        yield factory
    finally:
        engine.dispose()
        settings.database_url, settings.audit_flush_seconds = saved


def _subject(factory) -> Subject:  # type: ignore[no-untyped-def]
    with factory() as db:
        inst = b.institution(db, name="香河县人民医院")
        subject = b.subject_for(db, b.user(db, inst, "doctor", username="reader1"), inst.id)
        db.commit()
        return subject


def _reads(factory) -> list[tuple[str, str | None, int | None, str | None, dict | None]]:  # type: ignore[no-untyped-def,type-arg]
    with factory() as db:
        return [tuple(r) for r in db.execute(  # type: ignore[misc]
            select(AuditEvent.resource_type, AuditEvent.resource_id, AuditEvent.patient_id, AuditEvent.access_basis,
                   AuditEvent.detail).where(AuditEvent.action == "read").order_by(AuditEvent.id))]


def test_queued_reads_are_written_within_the_flush_interval_and_at_shutdown(pg):  # type: ignore[no-untyped-def]
    subject = _subject(pg)

    async def scenario() -> tuple[list, list]:  # type: ignore[type-arg]
        batch.read(subject, "recognition_lookup", 7, patient_id=7, basis="shared", detail={"item": "甲功三项"})
        batch.read(subject, "booking_patient", None, patient_id=8, basis="own")
        await asyncio.sleep(1.0)  # the flusher runs every 0.2 s here (≤ 1 s in production)
        by_flusher = _reads(pg)
        batch.read(subject, "referral", 9, patient_id=9, basis="grant")
        await batch.stop()  # shutdown: what is still queued is written
        at_shutdown = _reads(pg)
        await fastpool.dispose()
        return by_flusher, at_shutdown

    by_flusher, at_shutdown = asyncio.run(scenario())
    assert by_flusher == [("recognition_lookup", "7", 7, "shared", {"item": "甲功三项"}),
                          ("booking_patient", None, 8, "own", None)]
    assert at_shutdown[2:] == [("referral", "9", 9, "grant", None)] and batch.pending() == 0


def test_a_failed_write_keeps_the_rows_for_the_next_flush(pg, monkeypatch):  # type: ignore[no-untyped-def]
    subject = _subject(pg)

    async def scenario() -> int:
        batch.read(subject, "record", 1, patient_id=1, basis="own")
        real = fastpool.pool

        async def broken() -> None:
            raise OSError("database unreachable")

        monkeypatch.setattr(fastpool, "pool", broken)
        with pytest.raises(OSError):
            await batch.flush()
        kept = batch.pending()
        monkeypatch.setattr(fastpool, "pool", real)
        await batch.stop()
        await fastpool.dispose()
        return kept

    assert asyncio.run(scenario()) == 1
    assert [r[0] for r in _reads(pg)] == ["record"] and batch.pending() == 0
