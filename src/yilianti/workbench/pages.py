"""Workbench fragments polled by htmx: the counts on the home page, and on every page the 通知 badge and
the critical-value banner (base.html asks for `/workbench/live` every YILIANTI_POLL_SECONDS)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.web.render import render_page
from yilianti.workbench import service

router = APIRouter(include_in_schema=False)


@router.get("/workbench/counts")
def counts(request: Request, db: DB, subject: CurrentSubject) -> Response:
    """The workbench's counts and critical values (the home page swaps this in)."""
    return render_page(request, "workbench/_counts.html", {"wb": service.for_subject(db, subject)})


@router.get("/workbench/live")
def live(request: Request, db: DB, subject: CurrentSubject) -> Response:
    """The banner of open critical values this user's institution must acknowledge, and the 通知 badge."""
    alerts = [a for a in service.critical_alerts(db, subject) if a.can_acknowledge]
    return render_page(request, "workbench/_live.html", {"alerts": alerts})
