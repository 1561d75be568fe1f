"""Operations: /readyz reports the queue and answers 503 when it lags; /metrics has latency by route, the
outbox's depth and lag and job failures; a request id comes back on every response, is kept with the outbox
messages the request queued and is in the log lines of the job that delivers them (JSON logs)."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import sessionmaker

from yilianti.kit import clock
from yilianti.models.outbox import OutboxMessage
from yilianti.ops import logs
from yilianti.worker.outbox import enqueue
from yilianti.worker.runner import EXTERNAL, HANDLERS, handler, run_pending


def test_readyz_reports_the_queue_and_is_not_ready_when_it_lags(db, client):  # type: ignore[no-untyped-def]
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["queue"] == {"pending": 0, "failed": 0, "lag_seconds": 0.0}
    db.add(OutboxMessage(topic="notify", payload={"title": "x"}, available_at=clock.now() - timedelta(minutes=10)))
    db.flush()
    lagging = client.get("/readyz")
    assert lagging.status_code == 503 and lagging.headers["Retry-After"]
    body = lagging.json()
    assert body["status"] == "unavailable" and body["queue"]["lag_seconds"] >= 599
    assert client.get("/healthz").status_code == 200  # liveness does not depend on the queue


def test_metrics_have_latency_by_route_and_the_queue(db, client):  # type: ignore[no-untyped-def]
    db.add(OutboxMessage(topic="notify", payload={"title": "x"}, status="failed", attempts=5))
    db.flush()
    client.get("/healthz")
    client.get("/api/v1/patients/12345")  # a route template, not the id, is the label
    client.get("/no/such/page/98765")
    text = client.get("/metrics").text
    assert 'yilianti_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/api/v1/patients/{' in text
    routes = set(re.findall(r'route="([^"]*)"', text))  # the ids in neither label (a metric's value may hold the digits)
    assert routes and not any("98765" in r or "12345" in r for r in routes), routes
    assert 'yilianti_outbox_messages{state="failed"} 1.0' in text
    assert "yilianti_outbox_lag_seconds" in text


def test_request_id_follows_a_request_into_its_jobs(db, client, caplog):  # type: ignore[no-untyped-def]
    given = client.get("/healthz", headers={"X-Request-ID": "nginx-42"})
    assert given.headers["X-Request-ID"] == "nginx-42"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert made != "bad id with spaces" and len(made) == 32

    seen: list[Any] = []

    @handler("test.sms", external=True)
    def _sms(_db, payload):  # type: ignore[no-untyped-def]
        seen.append(logs.current())
        logging.getLogger("yilianti.test").warning("sending %s", payload["n"])

    try:
        with logs.request_id("req-7"):
            msg = enqueue(db, "test.sms", {"n": 1})
        db.flush()
        assert msg is not None and msg.request_id == "req-7"
        factory = sessionmaker(bind=db.connection(), join_transaction_mode="create_savepoint")
        with caplog.at_level(logging.WARNING, logger="yilianti.test"):
            assert run_pending(factory) == 1
        assert seen == ["req-7"]
        line = logs.JsonFormatter().format(next(r for r in caplog.records if r.name == "yilianti.test"))
        assert json.loads(line) | {"time": None} == {"time": None, "level": "warning", "logger": "yilianti.test",
                                                      "message": "sending 1", "request_id": "req-7"}
    finally:
        HANDLERS.pop("test.sms", None)
        EXTERNAL.discard("test.sms")
