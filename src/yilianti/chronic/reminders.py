"""Follow-up reminders (随访提醒) and the phone-call log (电话随访).

A periodic job (`queue_due`) finds the open follow-ups due within `chronic_reminder_days_before` days (or
already due, up to `OVERDUE_DAYS` back, when no reminder went out for that date) and writes one
`ChronicReminder` per (follow-up, due date, channel) — the unique index makes a second run, or a second
worker, a no-op — with an outbox message in the same transaction. After commit the outbox handler hands it
to a `Delivery`: the `FileDelivery` adapter writes one JSON file per message into the spool directory
(`chronic_reminder_spool_dir`), where an SMS gateway picks it up; tests use `RecordingDelivery`; network
adapters (SMS gateways, call lists) implement the same `send`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.chronic import repository
from yilianti.chronic.service import CONDITIONS, open_task
from yilianti.config import get_settings
from yilianti.exceptions import Forbidden, InvalidInput
from yilianti.kit import clock
from yilianti.kit.i18n import code_table
from yilianti.models.chronic import ChronicCall, ChronicReminder
from yilianti.notifications import channels
from yilianti.worker.outbox import enqueue

OVERDUE_DAYS = 30  # a follow-up already overdue this long when first seen gets no reminder (call instead)
CHANNEL = "sms"
TOPIC = "chronic.reminder"
STATUSES = code_table("chronic.reminder_status", {"queued": "待发送", "sent": "已发送", "failed": "发送失败",
                                                  "no_phone": "无手机号"})
OUTCOMES = code_table("chronic.call_outcome", {
    "will_come": "已接通，约定随访", "visited_elsewhere": "已接通，已在他处随访", "refused": "已接通，拒绝随访",
    "no_answer": "无人接听", "wrong_number": "号码错误或停机", "moved": "已迁出", "deceased": "已死亡"})


@dataclass(frozen=True)
class Message:
    """One reminder as a delivery adapter sees it."""

    reminder_id: int
    channel: str
    phone: str
    text: str


class DeliveryError(Exception):
    pass


class Delivery(Protocol):
    def send(self, message: Message) -> None: ...


class FileDelivery:
    """Writes each message as `<reminder id>.json` into the spool directory (write, then rename: a gateway
    polling the directory never reads half a file). Sending the same reminder again rewrites the same file."""

    def __init__(self, spool: str | Path) -> None:
        self.spool = Path(spool)

    def send(self, message: Message) -> None:
        try:
            self.spool.mkdir(parents=True, exist_ok=True)
            target = self.spool / f"{message.reminder_id}.json"
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps({"id": message.reminder_id, "channel": message.channel, "to": message.phone,
                                       "text": message.text}, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            raise DeliveryError(str(exc)) from exc


@dataclass
class RecordingDelivery:
    """The test double: records what would be sent."""

    sent: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> None:
        self.sent.append(message)


class GatewayDelivery:
    """Sends through the platform's SMS gateway (notifications.channels: the HTTP gateway configured by
    `YILIANTI_NOTIFY_HTTP_*`, its JSON template, HMAC signature and timeout), with the reminder's own
    idempotency key (`chronic-reminder-<id>`): a reminder sent again is recognised by the gateway."""

    def send(self, message: Message) -> None:
        gateway = channels.channel("sms")
        if gateway is None:
            raise DeliveryError("SMS gateway not configured (YILIANTI_NOTIFY_HTTP_URL)")
        try:
            gateway.send(channels.Outgoing(key=f"chronic-reminder-{message.reminder_id}", channel="sms",
                                           to=message.phone, kind="chronic_reminder", title="慢病随访提醒",
                                           text=message.text))
        except channels.ChannelError as exc:
            raise DeliveryError(str(exc)) from exc


_delivery: Delivery | None = None


def delivery() -> Delivery:
    """The adapter `chronic_reminder_adapter` names: `file` (the spool directory) or `gateway` (SMS)."""
    if _delivery is not None:
        return _delivery
    s = get_settings()
    return GatewayDelivery() if s.chronic_reminder_adapter == "gateway" else FileDelivery(s.chronic_reminder_spool_dir)


def use_delivery(adapter: Delivery | None) -> None:
    """Install another adapter (a network SMS gateway, or a test's RecordingDelivery); None restores the file one."""
    global _delivery
    _delivery = adapter


def text_of(institution: str, patient: str, condition: str, due: str, overdue: bool) -> str:
    if overdue:
        return f"【{institution}】{patient}您好，您的{condition}随访已于{due}到期，请尽快到{institution}随访。"
    return f"【{institution}】{patient}您好，您的{condition}随访将于{due}到期，请按时到{institution}随访。"


def queue_due(db: Session) -> int:
    """Queue a reminder for every open follow-up coming due (see the module's docstring). Returns how many."""
    today = clock.today_local()
    rows = repository.to_remind(db, today - timedelta(days=OVERDUE_DAYS),
                                today + timedelta(days=get_settings().chronic_reminder_days_before), CHANNEL)
    names: dict[int, str] = {}
    for task, reg, patient in rows:
        if task.institution_id not in names:
            names[task.institution_id] = repository.institution_name(db, task.institution_id)
        phone = (patient.phone or "").strip()
        text = text_of(names[task.institution_id], patient.name, CONDITIONS.get(reg.condition, ""),
                       f"{task.due_on.month}月{task.due_on.day}日", task.due_on < today)
        rem = ChronicReminder(follow_up_id=task.id, patient_id=task.patient_id, institution_id=task.institution_id,
                              due_on=task.due_on, channel=CHANNEL, text=text[:500],
                              status="queued" if phone else "no_phone")
        db.add(rem)
        db.flush()
        if phone:
            enqueue(db, TOPIC, {"reminder_id": rem.id}, dedupe_key=f"chronic-reminder-{rem.id}")
    return len(rows)


def deliver(db: Session, reminder_id: int, adapter: Delivery | None = None) -> ChronicReminder | None:
    """Send one queued reminder through the adapter (after the commit that queued it)."""
    rem = repository.reminder(db, reminder_id)
    if rem is None or rem.status != "queued":
        return rem
    patient = repository.patient_of(db, rem.patient_id)
    try:
        (adapter or delivery()).send(Message(rem.id, rem.channel, (patient.phone if patient else None) or "",
                                             rem.text))
    except DeliveryError as exc:
        rem.status, rem.error = "failed", str(exc)[:300]
    else:
        rem.status, rem.sent_at = "sent", clock.now()
    db.flush()
    return rem


def log_call(db: Session, subject: Subject, follow_up_id: int, outcome: str, note: str | None) -> ChronicCall:
    """Record a phone follow-up attempt on an open or recorded follow-up of the acting institution."""
    task, _reg = open_task(db, subject, follow_up_id)
    if not subject.has("doctor", "nurse"):
        raise Forbidden("只有本机构的医护人员可以记录电话随访")
    if outcome not in OUTCOMES:
        raise InvalidInput(fields={"outcome": "请选择通话结果"})
    call = ChronicCall(follow_up_id=task.id, patient_id=task.patient_id, institution_id=task.institution_id,
                       user_id=subject.user_id, called_at=clock.now(), outcome=outcome,
                       note=(note or "").strip()[:300] or None)
    db.add(call)
    db.flush()
    audit.record(db, subject, "create", "chronic_call", call.id, patient_id=task.patient_id,
                 detail={"follow_up_id": task.id, "outcome": outcome})
    return call
