"""The FHIR bulk export's job, delivered from the outbox (procrastinate under `yilianti worker`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.fhir import export
from yilianti.worker.runner import handler


@handler(export.TOPIC)
def run_export(db: Session, payload: dict[str, Any]) -> None:
    export.run(db, int(payload["export_id"]))
