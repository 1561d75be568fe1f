"""External delivery channels of notifications: an HTTP gateway (an SMS gateway, or WeChat's template-message
API) and e-mail over SMTP. The worker calls them after commit (notifications/tasks.py, an `external` outbox
topic: one message per transaction, retried with back-off, `failed` on /admin/jobs after the last attempt).

A retry never sends twice: every message carries an idempotency key fixed when it was queued — the HTTP
gateway gets it as the `Idempotency-Key` header (and `{key}` in the template), the e-mail as its Message-ID —
so a send whose answer was lost (timeout, 5xx after accepting, a worker killed before its commit) is
recognised by the gateway or the mail system when it comes again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import httpx

from yilianti.config import get_settings


@dataclass(frozen=True)
class Outgoing:
    """One notification as a channel sends it."""

    key: str  # idempotency key, the same on every retry
    channel: str  # sms | email
    to: str
    kind: str
    title: str
    text: str


class ChannelError(Exception):
    """The channel did not take the message (the outbox retries it)."""


class Channel(Protocol):
    def send(self, message: Outgoing) -> None: ...


def _fill(template: Any, values: dict[str, str]) -> Any:
    """The JSON template with each {name} in its strings replaced (the values stay strings: JSON-safe)."""
    if isinstance(template, str):
        out = template
        for name, value in values.items():
            out = out.replace("{" + name + "}", value)
        return out
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    return template


class HttpChannel:
    """POSTs the configured JSON template to the gateway. 2xx is sent; anything else (or no answer) raises."""

    def __init__(self, url: str, template: str, secret: str = "", timeout: float = 10.0) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout
        self.template = json.loads(template)

    def body(self, message: Outgoing) -> bytes:
        values = {"to": message.to, "text": message.text, "title": message.title, "kind": message.kind,
                  "key": message.key}
        return json.dumps(_fill(self.template, values), ensure_ascii=False).encode()

    def send(self, message: Outgoing) -> None:
        body = self.body(message)
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": message.key}
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Yilianti-Signature"] = f"sha256={digest}"
        try:
            answer = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ChannelError(f"gateway unreachable: {exc}") from exc
        if not answer.is_success:
            raise ChannelError(f"gateway answered {answer.status_code}: {answer.text[:200]}")


class SmtpChannel:
    """Sends a plain-text e-mail whose Message-ID is the idempotency key."""

    def __init__(self, host: str, port: int, sender: str, *, username: str = "", password: str = "",
                 starttls: bool = False, timeout: float = 10.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    def send(self, message: Outgoing) -> None:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = self.sender, message.to, message.title
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.key}@{self.sender.rsplit('@', 1)[-1]}>"
        mail.set_content(message.text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"SMTP: {exc}") from exc


_installed: dict[str, Channel] = {}


def channel(name: str) -> Channel | None:
    """The channel of that name as configured (None: not configured, nothing is queued for it)."""
    if name in _installed:
        return _installed[name]
    s = get_settings()
    if name == "sms" and s.notify_http_url:
        return HttpChannel(s.notify_http_url, s.notify_http_template, s.notify_http_secret, s.notify_http_timeout)
    if name == "email" and s.notify_smtp_host:
        return SmtpChannel(s.notify_smtp_host, s.notify_smtp_port, s.notify_smtp_from,
                           username=s.notify_smtp_username, password=s.notify_smtp_password,
                           starttls=s.notify_smtp_starttls, timeout=s.notify_http_timeout)
    return None


def install(name: str, adapter: Channel | None) -> None:
    """Put another adapter in place of the configured one (a test's recorder); None restores the configured."""
    if adapter is None:
        _installed.pop(name, None)
    else:
        _installed[name] = adapter
