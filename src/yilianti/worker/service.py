"""The failed-jobs page's rules: the system administrator sees outbox messages that failed (or are retrying
after a failure) and may retry one now or give it up; both are audited. Nothing is dropped silently: a message
leaves the list only when delivered or given up by a person."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.exceptions import Conflict, Forbidden, NotFound
from yilianti.kit import clock
from yilianti.kit.i18n import code_table
from yilianti.models.outbox import OutboxMessage
from yilianti.worker import repository

PER_PAGE = 30
STATUSES = (repository.FAILED, repository.PENDING, repository.ABANDONED)
STATUS_LABELS = code_table("outbox.status", {repository.PENDING: "待发送", repository.DONE: "已完成",
                                             repository.FAILED: "失败", repository.ABANDONED: "已放弃"})
TOPIC_LABELS = code_table("outbox.topic", {"notify": "站内通知", "diagnostics.critical_value": "危急值通知",
                                           "notify.external": "短信及邮件通知"})


@dataclass
class Page:
    items: list[OutboxMessage]
    page: int
    has_next: bool


def require_system_admin(subject: Subject) -> Subject:
    if not subject.is_system_admin:
        raise Forbidden("后台任务仅限系统管理员查看")
    return subject


def troubled(db: Session, subject: Subject, status: str | None, page: int) -> Page:
    require_system_admin(subject)
    items, has_next = repository.troubled(db, page, PER_PAGE, status if status in STATUSES else None)
    return Page(items, page, has_next)


def stats(db: Session) -> dict[str, Any]:
    """The outbox's pending, due and failed counts and its lag (seconds the oldest due message has waited)."""
    return repository.stats(db, clock.now())


def _message(db: Session, msg_id: int) -> OutboxMessage:
    msg = repository.get(db, msg_id)
    if msg is None:
        raise NotFound("后台任务不存在")
    return msg


def retry_now(db: Session, subject: Subject, msg_id: int) -> OutboxMessage:
    """Due again at once (a failed or given-up message goes back to the queue; its attempts are kept)."""
    require_system_admin(subject)
    msg = _message(db, msg_id)
    if msg.status == repository.DONE:
        raise Conflict("该任务已完成")
    before = msg.status
    msg.status = repository.PENDING
    msg.available_at = clock.now()
    audit.record(db, subject, "retry_job", "outbox", msg.id,
                 detail={"topic": msg.topic, "from": before, "to": msg.status, "attempts": msg.attempts})
    return msg


def give_up(db: Session, subject: Subject, msg_id: int) -> OutboxMessage:
    """No more attempts; the message stays in the list of given-up messages."""
    require_system_admin(subject)
    msg = _message(db, msg_id)
    if msg.status not in (repository.PENDING, repository.FAILED):
        raise Conflict("该任务已完成或已放弃")
    before = msg.status
    msg.status = repository.ABANDONED
    msg.processed_at = clock.now()
    audit.record(db, subject, "give_up_job", "outbox", msg.id,
                 detail={"topic": msg.topic, "from": before, "to": msg.status, "attempts": msg.attempts})
    return msg
