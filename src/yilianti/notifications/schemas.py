"""Notification API shapes (GET /api/v1/notifications …)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class NotificationOut(BaseModel):
    """One notification, its title and body in the reader's language (Accept-Language)."""

    id: int
    created_at: datetime
    kind: str
    title: str
    body: str | None
    link: str | None
    urgent: bool
    read_at: datetime | None


class NotificationPage(BaseModel):
    unread: int
    total: int
    page: int
    per_page: int
    pages: int
    items: list[NotificationOut]


class ReadAllOut(BaseModel):
    marked: int
    unread: int


class PreferencesIn(BaseModel):
    """The reader's choices: per kind of notification the external channels (sms, email) it also comes by;
    in-app is always on, and critical values always come by SMS too."""

    channels: dict[str, list[str]] = {}
    phone: str | None = None
    email: str | None = None


class PreferencesOut(BaseModel):
    channels: dict[str, list[str]]
    phone: str | None
    email: str | None
    practitioner_phone: str | None  # used for SMS when no phone is given
    available: list[str]  # channels this installation sends by
