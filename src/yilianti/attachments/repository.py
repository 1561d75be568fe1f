"""Queries of attachments: the live files of an owner (a referral, a consultation...)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.models.attachment import Attachment


def attachments_of(db: Session, owner_type: str, owner_id: int) -> list[Attachment]:
    """The owner's attachments not deleted, oldest first."""
    return list(db.scalars(select(Attachment).where(
        Attachment.owner_type == owner_type, Attachment.owner_id == owner_id,
        Attachment.deleted_at.is_(None)).order_by(Attachment.created_at, Attachment.id)))
