"""Twenty people accept the same referral at once, with real commits: exactly one wins."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from tests.referral.helpers import received_up, setup
from yilianti import db as dbmod
from yilianti.exceptions import Conflict
from yilianti.migrate import upgrade
from yilianti.models.patient import AccessGrant
from yilianti.models.referral import Referral, ReferralHistory
from yilianti.referral import service


@pytest.fixture(scope="module")
def committed(test_db):  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url)
    engine = dbmod.make_engine(url, **({"pool_size": 25, "max_overflow": 10} if "postgresql" in url else {}))
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    yield factory
    engine.dispose()


def test_twenty_accept_the_same_referral(committed):  # type: ignore[no-untyped-def]
    with committed() as db:
        w, patient = setup(db, tag="并发")
        ref = received_up(db, w, patient)
        db.commit()
        referral_id, doc = ref.id, w.lead_doc

    n = 20
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        with committed() as db:
            try:
                service.accept(db, doc, referral_id)
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
    assert Counter(outcomes) == Counter({"ok": 1, "referral_state_conflict": 19})

    with committed() as db:
        assert db.scalar(select(Referral.status).where(Referral.id == referral_id)) == "accepted"
        assert db.scalar(select(func.count()).select_from(ReferralHistory).where(
            ReferralHistory.referral_id == referral_id, ReferralHistory.to_status == "accepted")) == 1
        assert db.scalar(select(func.count()).select_from(AccessGrant).where(
            AccessGrant.source_type == "referral", AccessGrant.source_id == referral_id,
            AccessGrant.revoked_at.is_(None))) == 1
