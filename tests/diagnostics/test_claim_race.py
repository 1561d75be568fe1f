"""Twenty readers race for one study: exactly one wins, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests import builders as b
from tests.diagnostics.helpers import dx_world, received
from yilianti.diagnostics.reading import service as reading
from yilianti.exceptions import Conflict
from yilianti.models.diagnostics import DiagnosticOrder, DiagnosticOrderHistory


def test_twenty_readers_race_for_one_study_exactly_one_wins(committed: sessionmaker[Session]) -> None:
    with committed() as db:
        w = dx_world(db, tag="race")
        order_id = received(db, w).id
        readers = []
        for i in range(20):
            u = b.user(db, w.county, "reader", practitioner_id=None, username=f"race-reader-{i}")
            readers.append(u.id)
        db.commit()

    barrier = threading.Barrier(len(readers))
    wins: list[int] = []
    conflicts: list[int] = []
    errors: list[BaseException] = []

    def race(user_id: int) -> None:
        with committed() as db:
            from yilianti.models.auth import User
            subject = b.subject_for(db, db.get(User, user_id), w.county.id)  # type: ignore[arg-type]
            db.commit()
            barrier.wait()
            try:
                reading.claim(db, subject, order_id)
                db.commit()
                wins.append(user_id)
            except Conflict:
                db.rollback()
                conflicts.append(user_id)
            except BaseException as exc:  # noqa: BLE001 - reported below
                db.rollback()
                errors.append(exc)

    threads = [threading.Thread(target=race, args=(uid,)) for uid in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(wins) == 1 and len(conflicts) == 19
    with committed() as db:
        order = db.get(DiagnosticOrder, order_id)
        assert order is not None and order.status == "claimed" and order.claimed_by_user_id == wins[0]
        claims = db.scalar(select(func.count()).select_from(DiagnosticOrderHistory).where(
            DiagnosticOrderHistory.order_id == order_id, DiagnosticOrderHistory.to_status == "claimed"))
        assert claims == 1
