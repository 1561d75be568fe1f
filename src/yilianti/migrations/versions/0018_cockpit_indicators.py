"""The cockpit's indicator library and the targets set against it (issue 19).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'indicator',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('code', sa.String(64), nullable=False),
        sa.Column('group', sa.String(32), nullable=False),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('name_en', sa.String(200), nullable=False),
        sa.Column('definition', sa.Text(), nullable=False),
        sa.Column('numerator', sa.String(64), nullable=True),
        sa.Column('denominator', sa.String(64), nullable=True),
        sa.Column('unit', sa.String(16), nullable=False),
        sa.Column('direction', sa.String(8), nullable=False),
        sa.Column('level', sa.String(16), nullable=False),
        sa.Column('source', sa.String(16), nullable=False),
        sa.Column('data_source', sa.String(200), nullable=False),
        sa.Column('default_target', sa.Float(), nullable=True),
        sa.Column('target_source', sa.String(200), nullable=True),
        sa.Column('sort', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_indicator')),
        sa.UniqueConstraint('code', name=op.f('uq_indicator_code')),
    )
    op.create_table(
        'indicator_target',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('indicator_id', BigId, nullable=False),
        sa.Column('alliance_id', BigId, nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('source', sa.String(200), nullable=False),
        sa.Column('effective_from', sa.Date(), nullable=False),
        sa.Column('set_by_user_id', BigId, nullable=True),
        sa.Column('set_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['indicator_id'], ['indicator.id'], name=op.f('fk_indicator_target_indicator_id_indicator')),
        sa.ForeignKeyConstraint(['alliance_id'], ['alliance.id'], name=op.f('fk_indicator_target_alliance_id_alliance')),
        sa.ForeignKeyConstraint(['set_by_user_id'], ['app_user.id'], name=op.f('fk_indicator_target_set_by_user_id_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_indicator_target')),
        sa.UniqueConstraint('indicator_id', 'alliance_id', 'effective_from', 'set_at',
                            name=op.f('uq_indicator_target_indicator_id')),
    )
    op.create_index(op.f('ix_indicator_target_indicator_id'), 'indicator_target', ['indicator_id'])
    op.create_index(op.f('ix_indicator_target_alliance_id'), 'indicator_target', ['alliance_id'])


def downgrade() -> None:
    op.drop_table('indicator_target')
    op.drop_table('indicator')
