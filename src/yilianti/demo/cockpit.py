"""The cockpit's part of the demo (behind its own marker): the county-level supervisor — 廊坊市卫生健康委员会, a
health authority of its own kind — and its account, which sees the cockpits of the alliances led from 廊坊
(香河, 固安, 霸州, 广阳, the chest-pain and stroke networks) and no patient."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.demo import loader
from yilianti.models.alliance import Institution, InstitutionKind
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User

MARKER_ACTION = "demo_load_cockpit"
COMMISSION = "廊坊市卫生健康委员会"


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


def load(db: Session) -> dict[str, Any]:
    authority = db.scalar(select(Institution).where(Institution.name == COMMISSION))
    if authority is None:
        authority = Institution(name=COMMISSION, short_name="廊坊市卫健委", kind=InstitutionKind.health_authority,
                                level=None, province="河北", city="廊坊", address="河北省廊坊市广阳区新华路")
        db.add(authority)
        db.flush()
    for spec in loader.COCKPIT_ACCOUNTS:
        if db.scalar(select(User.id).where(User.username == spec.username)) is None:
            auth_service.create_user(db, None, spec.username, loader.DEMO_PASSWORD, spec.display_name,
                                     [(str(spec.role), authority.id, None)])
    detail = {"authority": authority.id}
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, "cockpit", channel="cli", detail=detail)
    db.flush()
    return detail
