"""FHIR bulk data exports ($export) of system clients: the request, its progress and its files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class BulkExport(IdMixin, CreatedMixin, Base):
    """One `$export` kick-off: made by a system client's account for its institution with its scopes; run as a
    job (fhir/tasks.py) that writes one ndjson file per resource type under var_dir/fhir-export/<id>/."""

    __tablename__ = "bulk_export"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id"), index=True)
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institution.id"))
    scope: Mapped[str] = mapped_column(String(500))
    level: Mapped[str] = mapped_column(String(16))  # system | patient | group
    group_id: Mapped[str | None] = mapped_column(String(64))  # the Group's logical id (fhir/groups.py)
    types: Mapped[str] = mapped_column(String(500))  # comma-separated resource types
    since: Mapped[datetime | None] = mapped_column()
    request_url: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | running | done | failed | cancelled
    progress: Mapped[str | None] = mapped_column(String(100))
    output: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # [{"type", "file", "count"}]
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column()
