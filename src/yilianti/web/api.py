"""Health check."""

from __future__ import annotations

from fastapi import APIRouter

from yilianti.auth.deps import DB
from yilianti.db import ping

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(db: DB) -> dict[str, str]:
    return {"status": "ok", "database": ping(db)}
