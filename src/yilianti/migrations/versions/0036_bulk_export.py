"""FHIR bulk data exports of system clients (`$export`: the request, its progress and its files' manifest).

Revision ID: 0036
Revises: 0035
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'bulk_export',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('user_id', BigId, nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('scope', sa.String(500), nullable=False),
        sa.Column('level', sa.String(16), nullable=False),
        sa.Column('types', sa.String(500), nullable=False),
        sa.Column('since', UTCDateTime(timezone=True), nullable=True),
        sa.Column('request_url', sa.String(2000), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('progress', sa.String(100), nullable=True),
        sa.Column('output', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('finished_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_bulk_export_user_id_app_user')),
        sa.ForeignKeyConstraint(['institution_id'], ['institution.id'],
                                name=op.f('fk_bulk_export_institution_id_institution')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_export')),
    )
    op.create_index(op.f('ix_bulk_export_user_id'), 'bulk_export', ['user_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_bulk_export_user_id'), 'bulk_export')
    op.drop_table('bulk_export')
