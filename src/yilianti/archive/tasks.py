"""Periodic job of the monthly partitions: the months ahead created, the retention applied (archive/service.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.archive import service
from yilianti.kit import clock
from yilianti.worker.runner import periodic


@periodic("archive.partitions", every_seconds=3600)
def keep_partitions(db: Session) -> int:
    upkeep = service.run(db.connection(), clock.now())
    db.commit()
    return len(upkeep.created) + len(upkeep.dropped)
