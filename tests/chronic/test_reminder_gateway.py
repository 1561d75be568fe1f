"""The follow-up reminders can go out through the network SMS gateway instead of the spool directory
(`YILIANTI_CHRONIC_REMINDER_ADAPTER=gateway`): the platform's HTTP gateway (a local server here) gets each
reminder once under its own idempotency key; a gateway that refuses or cannot be reached leaves the reminder
`failed` with the reason, and an unconfigured gateway says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from tests.chronic import test_teams_registry
from tests.notifications.test_channels import Gateway
from yilianti.chronic import reminders, service
from yilianti.config import get_settings
from yilianti.kit import clock
from yilianti.models.chronic import ChronicReminder

D = date(2026, 3, 2)
_at = test_teams_registry._at
world = test_teams_registry.world


@pytest.fixture
def gateway(monkeypatch) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    gw = Gateway()
    settings = get_settings()
    monkeypatch.setattr(settings, "chronic_reminder_adapter", "gateway")
    monkeypatch.setattr(settings, "notify_http_url", gw.url)
    monkeypatch.setattr(settings, "notify_http_template", '{"phone": "{to}", "content": "{text}", "id": "{key}"}')
    yield gw
    gw.close()


def test_reminders_through_the_sms_gateway(db, world, gateway: Gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sub = world["sub"]
    with clock.frozen(_at(D)):
        service.enrol(db, sub, world["王辉煌"].id, "hypertension", team_id=world["team"].id)
        service.enrol(db, sub, world["陈美华"].id, "hypertension", team_id=world["team"].id)
    with clock.frozen(_at(D + timedelta(days=12))):
        assert reminders.queue_due(db) == 2
        first, second = db.scalars(select(ChronicReminder).order_by(ChronicReminder.id)).all()
        assert isinstance(reminders.delivery(), reminders.GatewayDelivery)
        reminders.deliver(db, first.id)
        assert first.status == "sent" and first.sent_at is not None
        headers, body = gateway.requests[0]
        sent = json.loads(body)
        assert sent["id"] == headers["Idempotency-Key"] == f"chronic-reminder-{first.id}"
        assert sent["phone"] == "13800138000" and "王辉煌" in sent["content"] and "随访" in sent["content"]
        reminders.deliver(db, first.id)  # already sent: not sent again
        assert len(gateway.requests) == 1
        monkeypatch.setattr(get_settings(), "notify_http_url", "http://127.0.0.1:9/unreachable")
        reminders.deliver(db, second.id)
        assert second.status == "failed" and "unreachable" in (second.error or "")
        second.status = "queued"
        monkeypatch.setattr(get_settings(), "notify_http_url", "")
        reminders.deliver(db, second.id)
        assert second.status == "failed" and "not configured" in (second.error or "")
    monkeypatch.setattr(get_settings(), "chronic_reminder_adapter", "file")
    assert isinstance(reminders.delivery(), reminders.FileDelivery)
