"""API shapes shared by every domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class HistoryOut(BaseModel):
    """One history row of a workflow (kit/workflow.py): who moved it, when, from and to which status, why."""

    at: datetime
    user_id: int | None
    acting_institution_id: int | None
    from_status: str | None
    to_status: str
    reason: str | None
    detail: dict[str, Any] | None = None
