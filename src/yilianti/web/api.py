"""Liveness (/healthz: the process answers, whatever the database does) and readiness (/readyz: the database
answers too; 503 with Retry-After when it does not)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from yilianti.db import ready
from yilianti.web.faults import RETRY_AFTER_SECONDS, fault_of

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "the database does not answer"}})
def readyz() -> Any:
    try:
        return {"status": "ready", "database": ready()}
    except Exception as exc:
        if fault_of(exc) is None:
            raise
        return JSONResponse({"status": "unavailable", "database": "unavailable"}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
