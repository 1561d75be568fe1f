"""The cockpit's daily rollups: per alliance, measure, day, pair of members and department, the count and sum of
the rows counted; the days whose rollups are built; and referrals indexed by their submission (the cockpit's
periods read them by time).

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_referral_submitted_at', 'referral', ['submitted_at'])
    op.create_table(
        'cockpit_rollup',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('alliance_id', BigId, nullable=False),
        sa.Column('measure', sa.String(64), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('party_a', BigId, nullable=True),
        sa.Column('party_b', BigId, nullable=True),
        sa.Column('department_id', BigId, nullable=True),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('total', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['alliance_id'], ['alliance.id'], name=op.f('fk_cockpit_rollup_alliance_id_alliance')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cockpit_rollup')),
    )
    op.create_index('ix_cockpit_rollup_alliance_measure_day', 'cockpit_rollup', ['alliance_id', 'measure', 'day'])
    op.create_table(
        'cockpit_rollup_day',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('alliance_id', BigId, nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('built_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['alliance_id'], ['alliance.id'],
                                name=op.f('fk_cockpit_rollup_day_alliance_id_alliance')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cockpit_rollup_day')),
        sa.UniqueConstraint('alliance_id', 'day', name=op.f('uq_cockpit_rollup_day_alliance_id')),
    )


def downgrade() -> None:
    op.drop_table('cockpit_rollup_day')
    op.drop_index('ix_cockpit_rollup_alliance_measure_day', table_name='cockpit_rollup')
    op.drop_table('cockpit_rollup')
    op.drop_index('ix_referral_submitted_at', table_name='referral')
