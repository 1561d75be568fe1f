"""/admin/jobs: background jobs that failed — error, attempts, retry now, give up (system administrator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.kit.schemas import Id, PageNo
from yilianti.web.render import render_page
from yilianti.worker import service

router = APIRouter(include_in_schema=False)


def _system_admin(subject: CurrentSubject) -> Subject:
    return service.require_system_admin(subject)


SystemAdmin = Annotated[Subject, Depends(_system_admin)]


@router.get("/admin/jobs")
def jobs(request: Request, db: DB, subject: SystemAdmin, status: str = "", page: PageNo = 1) -> Response:
    result = service.troubled(db, subject, status or None, page)
    return render_page(request, "worker/jobs.html", {
        "result": result, "status": status, "statuses": service.STATUSES,
        "stats": service.stats(db), "max_attempts": get_settings().outbox_max_attempts})


@router.post("/admin/jobs/{msg_id}/retry")
def retry(msg_id: Id, db: DB, subject: SystemAdmin) -> Response:
    service.retry_now(db, subject, msg_id)
    return RedirectResponse("/admin/jobs?done=retry", status_code=303)


@router.post("/admin/jobs/{msg_id}/give-up")
def give_up(msg_id: Id, db: DB, subject: SystemAdmin) -> Response:
    service.give_up(db, subject, msg_id)
    return RedirectResponse("/admin/jobs?done=give_up", status_code=303)
