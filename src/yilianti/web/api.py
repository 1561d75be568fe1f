"""Liveness (/healthz: the process answers, whatever the database does), readiness (/readyz: the database
answers, the outbox is not lagging beyond `ready_max_queue_lag_seconds`, and the HL7/DICOM receivers this
process started accept connections; 503 with Retry-After when not) and /metrics (Prometheus, ops/metrics.py)."""

from __future__ import annotations

import socket
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from yilianti.config import get_settings
from yilianti.db import ready
from yilianti.web.faults import RETRY_AFTER_SECONDS, fault_of

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _unavailable(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({**body, "status": "unavailable"}, status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@router.get("/readyz", responses={503: {"description": "the database does not answer, the queue lags, or a receiver "
                                                       "of this process stopped listening"}})
def readyz() -> Any:
    from yilianti.diagnostics.receivers.start import RUNNING
    from yilianti.worker import service as jobs

    try:
        body: dict[str, Any] = {"status": "ready", "database": ready()}
        from yilianti.db import session_factory

        with session_factory()() as db:
            stats = jobs.stats(db)
    except Exception as exc:
        if fault_of(exc) is None:
            raise
        return _unavailable({"database": "unavailable"})
    body["queue"] = {"pending": stats["pending"], "failed": stats["failed"],
                     "lag_seconds": round(stats["lag_seconds"], 1)}
    body["receivers"] = {name: "listening" if _listening(*where) else "down" for name, where in RUNNING.ports.items()}
    limit = get_settings().ready_max_queue_lag_seconds
    if (limit and stats["lag_seconds"] > limit) or "down" in body["receivers"].values():
        return _unavailable(body)
    return body


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    from yilianti.ops.metrics import scrape

    return Response(scrape(), media_type=CONTENT_TYPE_LATEST)
