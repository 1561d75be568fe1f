"""Periodic jobs of authentication."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.auth import clients
from yilianti.worker.runner import periodic


@periodic("auth.purge_access_tokens", every_seconds=3600)
def purge_access_tokens(db: Session) -> int:
    return clients.purge_tokens(db)
