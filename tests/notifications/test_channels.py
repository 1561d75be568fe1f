"""External delivery channels (issue 22): a notification also goes out by SMS (an HTTP gateway, played here
by a local server) or e-mail (a local SMTP server), by each user's preferences, after commit, through the
outbox: a failed send is retried with back-off under the same idempotency key, so the gateway sends it once."""

from __future__ import annotations

import hashlib
import hmac
import json
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from tests import builders as b
from tests.live import api_token
from yilianti.config import get_settings
from yilianti.kit import clock
from yilianti.models.outbox import Notification, OutboxMessage
from yilianti.notifications import preferences
from yilianti.notifications.service import notify
from yilianti.worker.runner import load_job_modules, run_pending

TEMPLATE = ('{"touser": "{to}", "template_id": "T-42", "data": {"first": {"value": "{title}"}, '
            '"remark": {"value": "{text}"}}, "client_msg_id": "{key}"}')


class Gateway:
    """An SMS / WeChat-template gateway that remembers idempotency keys; `lose_first` answers 502 after it
    accepted the first message (the answer lost on the way back)."""

    def __init__(self, lose_first: bool = False) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.delivered: dict[str, dict[str, Any]] = {}
        self.lose_first = lose_first
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.requests.append((dict(self.headers), body))
                key = self.headers["Idempotency-Key"]
                first = key not in gateway.delivered
                gateway.delivered.setdefault(key, json.loads(body))
                status = 502 if first and gateway.lose_first else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b'{"errcode": 0}')

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/message/template/send"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpServer:
    """The smallest SMTP server that takes mail (EHLO/HELO, MAIL, RCPT, DATA, QUIT)."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []
        store = self.mails

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"220 fake ESMTP\r\n")
                sender, rcpts = "", []
                while line := self.rfile.readline():
                    cmd = line.decode().strip()
                    upper = cmd.upper()
                    if upper.startswith(("EHLO", "HELO")):
                        self.wfile.write(b"250 fake\r\n")
                    elif upper.startswith("MAIL FROM:"):
                        sender = cmd[10:].strip("<> ")
                        self.wfile.write(b"250 OK\r\n")
                    elif upper.startswith("RCPT TO:"):
                        rcpts.append(cmd[8:].strip("<> "))
                        self.wfile.write(b"250 OK\r\n")
                    elif upper == "DATA":
                        self.wfile.write(b"354 go on\r\n")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk
                        store.append((sender, rcpts, data))
                        self.wfile.write(b"250 queued\r\n")
                    elif upper == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 OK\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    load_job_modules()
    gw = Gateway(lose_first=True)
    settings = get_settings()
    monkeypatch.setattr(settings, "notify_http_url", gw.url)
    monkeypatch.setattr(settings, "notify_http_secret", "gateway-secret")
    monkeypatch.setattr(settings, "notify_http_template", TEMPLATE)
    yield gw
    gw.close()


def _deliver_all(db: Session) -> None:
    """Run the outbox until nothing is due, moving each back-off's wait into the past."""
    factory = sessionmaker(bind=db.connection(), join_transaction_mode="create_savepoint")
    for _ in range(10):
        run_pending(factory)
        db.expire_all()
        waiting = db.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending")).all()
        if not waiting:
            return
        for msg in waiting:
            msg.available_at = clock.now()
        db.flush()


def _prefs(db: Session, user: Any, choices: list[tuple[str, str]], phone: str = "", email: str = "") -> None:
    preferences.save(db, b.subject_for(db, user), choices, phone, email)


def test_sms_by_preference_retried_under_one_key_and_sent_once(db: Session, gateway: Gateway) -> None:
    inst = b.institution(db, "渠口镇卫生院")
    wants, colleague, quiet = b.user(db, inst, "doctor"), b.user(db, inst, "nurse"), b.user(db, inst, "doctor")
    _prefs(db, wants, [("referral", "sms")], phone="13900000001")
    _prefs(db, colleague, [("referral", "sms"), ("booking", "sms")], phone="13900000002")
    _prefs(db, quiet, [("booking", "sms")], phone="13900000003")
    notify(db, title="referral.notify.received", params={"id": 7}, user_id=wants.id, kind="referral")
    notify(db, title="新的转诊", body="转诊单 #8", institution_id=inst.id, kind="referral")  # to the institution
    db.flush()
    assert gateway.requests == []  # nothing leaves inside the request's transaction
    _deliver_all(db)

    sent = sorted(gateway.delivered.values(), key=lambda m: (m["touser"], m["data"]["remark"]["value"]))
    assert [m["touser"] for m in sent] == ["13900000001", "13900000001", "13900000002"]  # quiet: booking only
    texts = {(m["touser"], m["data"]["remark"]["value"]) for m in sent}
    assert ("13900000001", "新的转诊：转诊单 #8") in texts and ("13900000002", "新的转诊：转诊单 #8") in texts
    assert ("13900000001", "转诊单 #7：已接收") in texts  # the i18n code rendered in the user's language
    assert all(m["template_id"] == "T-42" for m in sent)
    # every send was answered 502 once (accepted, answer lost): retried after back-off with the same key,
    # which the gateway recognised — three messages delivered, six requests
    keys = [h["Idempotency-Key"] for h, _ in gateway.requests]
    assert len(gateway.requests) == 6 and len(set(keys)) == 3 and all(keys.count(k) == 2 for k in keys)
    for headers, body in gateway.requests:
        expected = hmac.new(b"gateway-secret", body, hashlib.sha256).hexdigest()
        assert headers["X-Yilianti-Signature"] == f"sha256={expected}"
        assert json.loads(body)["client_msg_id"] == headers["Idempotency-Key"]
    external = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == preferences.TOPIC)).all()
    assert len(external) == 3 and all(m.status == "done" and m.attempts == 1 for m in external)
    assert db.scalar(select(Notification).where(Notification.user_id == wants.id)) is not None  # in-app too


def test_critical_values_always_go_by_sms_and_a_dead_gateway_ends_on_the_jobs_page(
        db: Session, gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    inst = b.institution(db, "县医院")
    clinician = b.user(db, inst, "doctor")  # no preferences at all
    _prefs(db, clinician, [], phone="13900000009")
    notify(db, title="危急值：血钾 6.8", user_id=clinician.id, kind="critical", urgent=True)
    db.flush()
    _deliver_all(db)
    assert [m["touser"] for m in gateway.delivered.values()] == ["13900000009"]

    monkeypatch.setattr(get_settings(), "notify_http_url", "http://127.0.0.1:9/unreachable")
    notify(db, title="危急值：血钾 7.1", user_id=clinician.id, kind="critical", urgent=True)
    db.flush()
    _deliver_all(db)
    dead = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == preferences.TOPIC,
                                                  OutboxMessage.status == "failed")).all()
    assert len(dead) == 1 and dead[0].attempts == get_settings().outbox_max_attempts
    assert "unreachable" in (dead[0].last_error or "")  # listed with its error on /admin/jobs


def test_email_over_smtp(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    load_job_modules()
    smtp = SmtpServer()
    try:
        settings = get_settings()
        monkeypatch.setattr(settings, "notify_smtp_host", "127.0.0.1")
        monkeypatch.setattr(settings, "notify_smtp_port", smtp.port)
        monkeypatch.setattr(settings, "notify_smtp_from", "noreply@yilianti.example")
        inst = b.institution(db)
        expert = b.user(db, inst, "doctor")
        _prefs(db, expert, [("consultation", "email")], email="expert@hospital.example")
        notify(db, title="新的会诊申请 HZ-001", body="胸痛待查", user_id=expert.id, kind="consultation")
        notify(db, title="预约已到诊", user_id=expert.id, kind="booking")  # not chosen by e-mail
        db.flush()
        _deliver_all(db)
    finally:
        smtp.close()
    assert len(smtp.mails) == 1
    sender, rcpts, data = smtp.mails[0]
    mail = message_from_bytes(data)
    assert sender == "noreply@yilianti.example" and rcpts == ["expert@hospital.example"]
    assert str(make_header(decode_header(mail["Subject"]))) == "新的会诊申请 HZ-001"
    key = db.scalar(select(OutboxMessage.payload).where(OutboxMessage.topic == preferences.TOPIC))["key"]
    assert mail["Message-ID"] == f"<{key}@yilianti.example>"
    assert "胸痛待查" in mail.get_payload(decode=True).decode()


def test_settings_page_and_api(db: Session, client: TestClient) -> None:
    inst = b.institution(db)
    u = b.user(db, inst, "doctor")
    db.flush()
    csrf = b.login(client, u.username)
    page = client.get("/notifications/settings")
    assert page.status_code == 200 and "通知设置" in page.text and "危急值" in page.text
    assert 'id="pref-critical-sms"' in page.text and "disabled" in page.text.split('id="pref-critical-sms"')[1][:80]
    saved = client.post("/notifications/settings", data={"csrf_token": csrf, "choice": ["referral:sms", "booking:email"],
                                                        "phone": "13900000005", "email": "doc@example.org"})
    assert saved.status_code == 200 and "通知设置已保存" in saved.text
    bad = client.post("/notifications/settings", data={"csrf_token": csrf, "email": "not-an-address"})
    assert bad.status_code == 422 and "电子邮箱格式不正确" in bad.text
    client.cookies.set("lang", "en")
    english = client.get("/notifications/settings").text
    assert "Notification settings" in english and "Critical value" in english and "E-mail" in english

    headers = {"Authorization": f"Bearer {api_token(db, b.subject_for(db, u))}"}
    db.flush()
    got = client.get("/api/v1/notifications/preferences", headers=headers).json()
    assert "channels" in got, got
    assert got["channels"] == {"booking": ["email"], "critical": ["sms"], "referral": ["sms"]}
    assert got["phone"] == "13900000005" and got["email"] == "doc@example.org"
    put = client.put("/api/v1/notifications/preferences", headers=headers,
                     json={"channels": {"consultation": ["sms", "in_app"]}, "phone": "13900000006"})
    assert put.status_code == 200 and put.json()["channels"] == {"consultation": ["sms"], "critical": ["sms"]}
    wrong = client.put("/api/v1/notifications/preferences", headers=headers,
                       json={"channels": {"lottery": ["carrier_pigeon"]}})
    assert wrong.status_code == 422 and wrong.json()["error"] == "invalid_input", wrong.text
    assert "channels" in wrong.json()["fields"], wrong.text


def test_one_query_per_delivery_with_the_practitioners_number_and_the_users_language(
        db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """`send` runs once per delivery (one transaction each): the user's state, language and addresses come in one
    query. No number entered: the practitioner's; an English reader gets English; a deactivated user nothing."""
    load_job_modules()
    gw = Gateway()
    try:
        settings = get_settings()
        monkeypatch.setattr(settings, "notify_http_url", gw.url)
        monkeypatch.setattr(settings, "notify_http_secret", "gateway-secret")
        monkeypatch.setattr(settings, "notify_http_template", TEMPLATE)
        inst = b.institution(db)
        practitioner = b.practitioner(db, inst)
        practitioner.phone = "13900000077"
        doctor = b.user(db, inst, "doctor", practitioner_id=practitioner.id)
        doctor.locale = "en"
        gone = b.user(db, inst, "doctor")
        _prefs(db, gone, [], phone="13900000078")
        gone.active = False
        db.flush()
        asked: list[str] = []
        conn = db.connection()

        def count(*args: Any) -> None:
            asked.append(args[2])

        job = {"key": "k-1", "channel": "sms", "kind": "referral", "title": "referral.notify.received",
               "params": {"id": 7}}
        event.listen(conn, "before_cursor_execute", count)
        try:
            sent = preferences.send(db, {**job, "user_id": doctor.id})
            assert len(asked) == 1, asked
            assert preferences.send(db, {**job, "key": "k-2", "user_id": gone.id}) is False
            assert preferences.send(db, {**job, "key": "k-3", "user_id": 987654321}) is False
        finally:
            event.remove(conn, "before_cursor_execute", count)
        assert len(asked) == 3
    finally:
        gw.close()
    assert sent is True
    assert [(m["touser"], m["client_msg_id"]) for m in gw.delivered.values()] == [("13900000077", "k-1")]
    assert next(iter(gw.delivered.values()))["data"]["first"]["value"] == "Referral #7: received"
