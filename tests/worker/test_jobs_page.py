"""/admin/jobs: the system administrator sees failed background jobs (error, attempts), retries one now or
gives it up — audited, labelled in Chinese and English; nobody else sees the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests import builders as b
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent
from yilianti.models.outbox import OutboxMessage


def _failed(db, topic: str = "notify", error: str = "ConnectionRefusedError: SMS gateway down") -> OutboxMessage:  # type: ignore[no-untyped-def]
    msg = OutboxMessage(topic=topic, payload={"title": "x"}, status="failed", attempts=5, last_error=error,
                        available_at=clock.now() - timedelta(minutes=5))
    db.add(msg)
    db.flush()
    return msg


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_failed_jobs_are_listed_with_their_error_and_labels(db, client, lang):  # type: ignore[no-untyped-def]
    msg = _failed(db)
    done = OutboxMessage(topic="notify", payload={}, status="done", attempts=0)
    db.add(done)
    db.flush()
    b.user(db, None, "system_admin", username="root")
    b.login(client, "root")
    client.cookies.set("lang", lang)
    page = client.get("/admin/jobs")
    assert page.status_code == 200, page.text[-500:]
    assert f'id="job-{msg.id}"' in page.text and f'id="job-{done.id}"' not in page.text
    assert "SMS gateway down" in page.text and "5 / 5" in page.text
    if lang == "en":
        assert "Background jobs" in page.text and "In-app notification" in page.text and "Failed" in page.text
        assert "Retry now" in page.text and "Give up" in page.text
    else:
        assert "站内通知" in page.text and "失败" in page.text and "立即重试" in page.text
    assert "/admin/jobs" in client.get("/admin").text


def test_retry_now_and_give_up_are_audited(db, client):  # type: ignore[no-untyped-def]
    retried, dropped = _failed(db), _failed(db)
    b.user(db, None, "system_admin", username="root")
    token = b.login(client, "root")
    r = client.post(f"/admin/jobs/{retried.id}/retry", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    r = client.post(f"/admin/jobs/{dropped.id}/give-up", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    db.refresh(retried)
    db.refresh(dropped)
    assert retried.status == "pending" and clock.as_utc(retried.available_at) <= clock.now()
    assert dropped.status == "abandoned"
    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.resource_type == "outbox")))
    assert actions == {"retry_job", "give_up_job"}
    given_up = client.get("/admin/jobs?status=abandoned").text
    assert f'id="job-{dropped.id}"' in given_up and f'id="job-{retried.id}"' not in given_up
    # a message given up cannot be given up twice; an unknown one is a 404
    assert client.post(f"/admin/jobs/{dropped.id}/give-up", data={"csrf_token": token}).status_code == 409
    assert client.post("/admin/jobs/999999/retry", data={"csrf_token": token}).status_code == 404


def test_only_the_system_administrator_sees_jobs(db, client):  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    b.user(db, inst, "institution_admin", username="hadmin")
    b.login(client, "hadmin")
    assert client.get("/admin/jobs").status_code == 403
    assert "/admin/jobs" not in client.get("/admin").text
