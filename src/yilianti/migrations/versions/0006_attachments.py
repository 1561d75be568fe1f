"""attachments: generic files (PDF/JPEG/PNG/DICOM) owned by a referral, consultation, …

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import yilianti.models.base

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('attachment',
    sa.Column('owner_type', sa.String(length=32), nullable=False),
    sa.Column('owner_id', _ID, nullable=False),
    sa.Column('patient_id', _ID, nullable=False),
    sa.Column('institution_id', _ID, nullable=True),
    sa.Column('uploaded_by_user_id', _ID, nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('storage_key', sa.String(length=200), nullable=False),
    sa.Column('deleted_at', yilianti.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deleted_by_user_id', _ID, nullable=True),
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('created_at', yilianti.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deleted_by_user_id'], ['app_user.id'], name=op.f('fk_attachment_deleted_by_user_id_app_user')),
    sa.ForeignKeyConstraint(['institution_id'], ['institution.id'], name=op.f('fk_attachment_institution_id_institution')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_attachment_patient_id_patient')),
    sa.ForeignKeyConstraint(['uploaded_by_user_id'], ['app_user.id'], name=op.f('fk_attachment_uploaded_by_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachment'))
    )
    op.create_index('ix_attachment_owner', 'attachment', ['owner_type', 'owner_id'], unique=False)
    op.create_index('ix_attachment_patient', 'attachment', ['patient_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_attachment_patient', table_name='attachment')
    op.drop_index('ix_attachment_owner', table_name='attachment')
    op.drop_table('attachment')
