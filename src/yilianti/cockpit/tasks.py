"""Periodic job of the cockpit: build the daily rollups of the days not built yet, and rebuild the last two."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.cockpit import rollup
from yilianti.worker.runner import periodic

ROLLUP_SECONDS = 600.0  # every ten minutes: a new day is built shortly after midnight


@periodic("cockpit.rollup", every_seconds=ROLLUP_SECONDS)
def refresh_rollups(db: Session) -> int:
    return rollup.refresh(db)
