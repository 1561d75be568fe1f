"""The FHIR bulk export's job, delivered from the outbox (procrastinate under `yilianti worker`), and the periodic
removal of expired exports' files."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from yilianti.fhir import export
from yilianti.worker.runner import handler, periodic


@handler(export.TOPIC)
def run_export(db: Session, payload: dict[str, Any]) -> None:
    export.run(db, int(payload["export_id"]))


@periodic("fhir.expire_exports", every_seconds=600)
def expire_exports(db: Session) -> int:
    return export.expire(db)
