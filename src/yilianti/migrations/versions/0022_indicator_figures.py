"""The cockpit's imported figures (the national indicators the platform holds no data for).

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'indicator_figure',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('indicator_id', BigId, nullable=False),
        sa.Column('alliance_id', BigId, nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('period_end', sa.Date(), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('source', sa.String(200), nullable=False),
        sa.Column('evidence', sa.Text(), nullable=True),
        sa.Column('entered_by_user_id', BigId, nullable=True),
        sa.Column('entered_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['indicator_id'], ['indicator.id'], name=op.f('fk_indicator_figure_indicator_id_indicator')),
        sa.ForeignKeyConstraint(['alliance_id'], ['alliance.id'], name=op.f('fk_indicator_figure_alliance_id_alliance')),
        sa.ForeignKeyConstraint(['entered_by_user_id'], ['app_user.id'],
                                name=op.f('fk_indicator_figure_entered_by_user_id_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_indicator_figure')),
    )
    op.create_index(op.f('ix_indicator_figure_indicator_id'), 'indicator_figure', ['indicator_id'])
    op.create_index(op.f('ix_indicator_figure_alliance_id'), 'indicator_figure', ['alliance_id'])


def downgrade() -> None:
    op.drop_table('indicator_figure')
