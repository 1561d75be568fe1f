"""WADO-RS metadata documents made at ingest (diagnostics/dicomweb/document.py): one row per instance.
Instances stored before: `yilianti dicom-metadata` makes theirs (until then they are read from their files).

Revision ID: 0033
Revises: 0032
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'imaging_instance_metadata',
        sa.Column('instance_id', BigId, nullable=False),
        sa.Column('document', sa.Text(), nullable=False),
        sa.Column('made_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['imaging_instance.id'],
                                name=op.f('fk_imaging_instance_metadata_instance_id_imaging_instance')),
        sa.PrimaryKeyConstraint('instance_id', name=op.f('pk_imaging_instance_metadata')),
    )


def downgrade() -> None:
    op.drop_table('imaging_instance_metadata')
