"""Outbox (jobs and notifications sent only after commit) and in-app notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.kit import clock
from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class OutboxMessage(IdMixin, CreatedMixin, Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "available_at"),)

    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | failed
    available_at: Mapped[datetime] = mapped_column(default=clock.now)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column()
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    # the request that queued it (ops/logs.py): the job's log lines carry it too
    request_id: Mapped[str | None] = mapped_column(String(64))


class PeriodicRun(Base):
    """One row per periodic job and period that ran (worker/queue.py): the job's own transaction claims its
    period, so a period runs once even when a late worker's scheduler defers it a second time."""

    __tablename__ = "periodic_run"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    period: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the period's start, Unix seconds
    started_at: Mapped[datetime] = mapped_column(default=clock.now)


class Notification(IdMixin, CreatedMixin, Base):
    """In-app notification to a user or to everyone of a role at an institution."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_user", "user_id", "read_at"),
                      Index("ix_notification_inst", "institution_id", "read_at"))

    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    # title/body may be i18n codes (e.g. "referral.overdue.title") rendered with these params per reader's locale
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    link: Mapped[str | None] = mapped_column(String(300))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    read_at: Mapped[datetime | None] = mapped_column()


class NotificationPreference(Base):
    """One external channel (sms, email) a user wants one kind of notification by (in-app is always on)."""

    __tablename__ = "notification_preference"
    __table_args__ = (Index("ix_notification_preference_kind", "kind", "channel"),)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)


class NotificationContact(Base):
    """Where a user's external notifications go: a mobile number (else the practitioner's phone) and e-mail."""

    __tablename__ = "notification_contact"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
