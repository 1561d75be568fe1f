"""Periodic job of the audit log: seal what was committed into the hash chain (audit/chain.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from yilianti.audit import chain
from yilianti.config import get_settings
from yilianti.worker.runner import periodic


@periodic("audit.seal", every_seconds=get_settings().audit_seal_seconds)
def seal_audit_chain(db: Session) -> int:
    return chain.seal_committed(db)
