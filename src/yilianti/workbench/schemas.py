"""Workbench API shapes (GET /api/v1/workbench)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class WorkItemOut(BaseModel):
    """One count of waiting work; `url` is the page listing exactly these rows."""

    key: str
    group: str
    label: str
    count: int
    url: str
    tone: str


class CriticalValueOut(BaseModel):
    """An unacknowledged critical value (危急值) of an order the acting institution placed or reads."""

    id: int
    patient_name: str
    item_name: str
    value_text: str
    order_id: int
    notified_at: datetime
    minutes_since: int
    can_acknowledge: bool


class WorkbenchOut(BaseModel):
    unread_notifications: int
    waiting: int
    poll_seconds: int
    critical_values: list[CriticalValueOut]
    items: list[WorkItemOut]
