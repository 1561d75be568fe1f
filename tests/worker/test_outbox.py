"""Notifications go out only after commit, through the outbox and the job runner."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from tests import builders as b
from yilianti.models.outbox import Notification, OutboxMessage
from yilianti.notifications.repository import unread_count
from yilianti.notifications.service import notify
from yilianti.worker.runner import EXTERNAL, HANDLERS, handler, run_pending


def test_rolled_back_transaction_sends_nothing(db):  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    u = b.user(db, inst, "doctor")
    nested = db.begin_nested()
    notify(db, title="不应发送", user_id=u.id)
    db.flush()
    nested.rollback()
    assert db.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.topic == "notify")) == 0


def test_committed_message_is_delivered_once_and_failures_retry(db):  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    u = b.user(db, inst, "doctor")
    notify(db, title="转诊已接收", user_id=u.id, link="/referrals/1", dedupe_key="ref-1-accepted")
    notify(db, title="转诊已接收", user_id=u.id, dedupe_key="ref-1-accepted")  # deduplicated
    calls = []

    @handler("test.flaky", external=True)  # an SMS gateway: one message per transaction
    def _flaky(_db, payload):  # type: ignore[no-untyped-def]
        calls.append(payload)
        raise RuntimeError("SMS gateway down")

    try:
        from yilianti.worker.outbox import enqueue

        enqueue(db, "test.flaky", {"n": 1})
        db.flush()
        factory = sessionmaker(bind=db.connection(), join_transaction_mode="create_savepoint")
        assert run_pending(factory) == 1
        assert run_pending(factory) == 0  # already delivered; the flaky one waits for its back-off
        subject = b.subject_for(db, u)
        assert unread_count(db, subject) == 1
        assert db.scalar(select(Notification.title).where(Notification.user_id == u.id)) == "转诊已接收"
        flaky = db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "test.flaky"))
        db.refresh(flaky)
        assert flaky.status == "pending" and flaky.attempts == 1 and "SMS" in flaky.last_error
        assert len(calls) == 1
    finally:
        HANDLERS.pop("test.flaky", None)
        EXTERNAL.discard("test.flaky")
