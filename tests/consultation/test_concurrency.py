"""Ten clicks on "convert to referral" at once, with real commits: one referral, one converted case."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from tests.consultation.helpers import answered, world
from yilianti import db as dbmod
from yilianti.consultation import flows
from yilianti.exceptions import Conflict
from yilianti.migrate import upgrade
from yilianti.models.consultation import ConsultationHistory
from yilianti.models.referral import Referral


@pytest.fixture(scope="module")
def committed(test_db):  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url)
    engine = dbmod.make_engine(url, **({"pool_size": 15, "max_overflow": 5} if "postgresql" in url else {}))
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    yield factory
    engine.dispose()


def test_ten_concurrent_conversions_make_one_referral(committed):  # type: ignore[no-untyped-def]
    with committed() as db:
        w = world(db, tag="并发")
        c = answered(db, w, outcome="recommend_referral")
        db.commit()
        case_id, doc, patient_id = c.id, w.comm_doc, w.patient.id

    n = 10
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        with committed() as db:
            try:
                flows.convert_to_referral(db, doc, case_id)
                db.commit()
                result = "ok"
            except Conflict as exc:
                db.rollback()
                result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert Counter(outcomes) == Counter({"ok": 1, "consultation_state_conflict": n - 1})
    with committed() as db:
        assert db.scalar(select(func.count()).select_from(Referral).where(Referral.patient_id == patient_id)) == 1
        assert db.scalar(select(func.count()).select_from(ConsultationHistory).where(
            ConsultationHistory.consultation_id == case_id, ConsultationHistory.to_status == "converted")) == 1
