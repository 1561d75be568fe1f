"""The workbench as JSON (GET /api/v1/workbench): the acting user's counts of waiting work, each with the
page that lists exactly those rows, and the unacknowledged critical values."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.config import get_settings
from yilianti.web.render import t
from yilianti.workbench import service
from yilianti.workbench.schemas import CriticalValueOut, WorkbenchOut, WorkItemOut

router = APIRouter(prefix="/api/v1", tags=["workbench"])

ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "not signed in / no valid API token"}}


@router.get("/workbench", response_model=WorkbenchOut, responses=ERRORS)
def workbench(request: Request, db: DB, subject: CurrentSubject) -> WorkbenchOut:
    wb = service.for_subject(db, subject)
    return WorkbenchOut(
        unread_notifications=wb.unread, waiting=wb.waiting, poll_seconds=get_settings().poll_seconds,
        critical_values=[CriticalValueOut(id=a.id, patient_name=a.patient_name, item_name=a.item_name,
                                          value_text=a.value_text, order_id=a.order_id, notified_at=a.notified_at,
                                          minutes_since=a.minutes, can_acknowledge=a.can_acknowledge)
                         for a in wb.alerts],
        items=[WorkItemOut(key=i.key, group=t(request, i.group), label=t(request, i.label), count=i.count,
                           url=i.href, tone=i.tone if i.count else "") for i in wb.items])
