"""Per-user notification preferences: which kinds of notification also go out by SMS (the HTTP gateway) or
e-mail, to which number and address. In-app is always on. Critical values (危急值) always go in-app and by SMS
to the clinician they are addressed to, whatever the preferences say (a number is needed: the contact's, else
the practitioner's).

The in-app handler (worker/runner.py, topic `notify`) calls `fan_out` for each notification in its own
transaction: one `notify.external` outbox message per (addressee, channel), each with an idempotency key fixed
now, so redone batches queue nothing twice (the batch's rollback takes its messages with it) and a retried
send carries the same key (notifications/channels.py). A channel that is not configured queues nothing."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.exceptions import InvalidInput
from yilianti.kit.i18n import code_table, translate
from yilianti.models.outbox import NotificationContact
from yilianti.notifications import channels, repository
from yilianti.worker.outbox import enqueue

log = logging.getLogger(__name__)

TOPIC = "notify.external"
KINDS = code_table("notification.kind", {
    "critical": "危急值", "chronic_alarm": "慢病预警", "referral": "转诊", "referral_overdue": "转诊超时",
    "booking": "预约", "consultation": "会诊", "consultation_overdue": "会诊超时", "diagnostics": "检查检验",
    "transfer": "重症转运", "info": "其他通知"})
CHANNELS = code_table("notification.channel", {"in_app": "站内", "sms": "短信", "email": "电子邮件"})
EXTERNAL = ("sms", "email")
ALWAYS = frozenset({("critical", "sms")})  # critical values: always in-app + SMS
PHONE = re.compile(r"\+?[0-9][0-9 -]{5,18}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass
class Preferences:
    chosen: set[tuple[str, str]]  # (kind, channel), ALWAYS included
    phone: str  # as entered ('' none)
    email: str
    practitioner_phone: str  # used when no phone is entered

    def wants(self, kind: str, channel: str) -> bool:
        return (kind, channel) in self.chosen


def of(db: Session, user_id: int) -> Preferences:
    found = repository.addresses(db, user_id)
    return Preferences(repository.preferences(db, user_id) | ALWAYS, *_contact(found))


def _contact(found: repository.Addresses | None) -> tuple[str, str, str]:
    """(phone, e-mail, the practitioner's phone), '' where there is none."""
    return ((found.phone or "", found.email or "", found.practitioner_phone or "") if found is not None
            else ("", "", ""))


def save(db: Session, subject: Subject, chosen: Iterable[tuple[str, str]], phone: str | None,
         email: str | None) -> Preferences:
    """The reader's own preferences replaced by these choices (unknown kinds or channels refused)."""
    picked = {(k, c) for k, c in chosen if c != "in_app"}  # in-app is always on
    errors: dict[str, str] = {}
    if any(k not in KINDS or c not in EXTERNAL for k, c in picked):
        errors["channels"] = "未知的通知类型或渠道"
    phone, email = (phone or "").strip(), (email or "").strip()
    if phone and not PHONE.fullmatch(phone):
        errors["phone"] = "手机号格式不正确"
    if email and (len(email) > 254 or not EMAIL.fullmatch(email)):
        errors["email"] = "电子邮箱格式不正确"
    if errors:
        raise InvalidInput(fields=errors)
    repository.replace_preferences(db, subject.user_id, picked - ALWAYS)
    contact = repository.contact(db, subject.user_id)
    if contact is None:
        contact = NotificationContact(user_id=subject.user_id)
        db.add(contact)
    contact.phone, contact.email = phone or None, email or None
    db.flush()
    return of(db, subject.user_id)


def configured() -> tuple[str, ...]:
    """The external channels this installation can send by."""
    return tuple(c for c in EXTERNAL if channels.channel(c) is not None)


def fan_out(db: Session, notice: dict[str, Any]) -> int:
    """Queue the external deliveries of one notification (called by the in-app handler). Returns how many."""
    ready = configured()
    if not ready:
        return 0
    kind, user_id = notice.get("kind") or "info", notice.get("user_id")
    targets = set(repository.wanting(db, kind, user_id=user_id, institution_id=notice.get("institution_id")))
    if user_id is not None:
        targets |= {(int(user_id), c) for k, c in ALWAYS if k == kind}
    queued = 0
    for target, channel in sorted(targets):
        if channel in ready:
            enqueue(db, TOPIC, {"key": uuid.uuid4().hex, "user_id": target, "channel": channel, "kind": kind,
                                "title": notice.get("title"), "body": notice.get("body"),
                                "params": notice.get("params")})
            queued += 1
    return queued


def send(db: Session, job: dict[str, Any]) -> bool:
    """Send one queued external delivery (the worker's `notify.external` handler). False when there is nothing
    to send (the user left, no number or address, the channel switched off); ChannelError makes it retry."""
    user_id, name = int(job["user_id"]), str(job["channel"])
    adapter = channels.channel(name)
    if adapter is None:
        return False
    found = repository.addresses(db, user_id)  # the one query of a delivery
    if found is None or not found.active:
        return False
    phone, email, practitioner_phone = _contact(found)
    to = (phone or practitioner_phone) if name == "sms" else email
    if not to:
        log.info("notification %s by %s: user %s has no address", job.get("key"), name, user_id)
        return False
    params = job.get("params") or {}
    loc = found.locale if found.locale in ("zh", "en") else "zh"
    title = translate(str(job.get("title") or ""), loc, **params) if params else str(job.get("title") or "")
    body = job.get("body")
    text = (translate(str(body), loc, **params) if params else str(body)) if body else ""
    adapter.send(channels.Outgoing(key=str(job["key"]), channel=name, to=to, kind=str(job.get("kind") or "info"),
                                   title=title, text=f"{title}{'：' + text if text else ''}"))
    return True
