"""Attachments (PDF, JPEG, PNG, DICOM) belonging to any owner in any domain.

An attachment is owned by (owner_type, owner_id) — e.g. ("referral", 12) or
("consultation", 7) — and always concerns one patient, so every download goes through the
patient access policy. Files live on disk under the attachments directory, addressed by
their SHA-256; the row holds the metadata. Deletion is soft (deleted_at) and audited.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from yilianti.models.base import Base, BigId, CreatedMixin, IdMixin


class Attachment(IdMixin, CreatedMixin, Base):
    __tablename__ = "attachment"
    __table_args__ = (
        Index("ix_attachment_owner", "owner_type", "owner_id"),
        Index("ix_attachment_patient", "patient_id"),
    )

    owner_type: Mapped[str] = mapped_column(String(32))  # referral | consultation | …
    owner_id: Mapped[int] = mapped_column(BigId)
    patient_id: Mapped[int] = mapped_column(BigId, ForeignKey("patient.id"))
    institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution.id"))  # uploader's site
    uploaded_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))  # pdf | jpeg | png | dicom (sniffed from the bytes)
    content_type: Mapped[str] = mapped_column(String(64))  # from the sniffed kind, never the client's
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))  # path relative to the attachments directory
    deleted_at: Mapped[datetime | None] = mapped_column()
    deleted_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("app_user.id"))
