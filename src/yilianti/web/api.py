"""Health check."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from yilianti.auth.deps import DB

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(db: DB) -> dict[str, str]:
    db.execute(text("SELECT 1"))
    return {"status": "ok", "database": db.get_bind().dialect.name}
