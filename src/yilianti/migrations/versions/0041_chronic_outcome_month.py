"""Stored monthly outcome figures of chronic care (chronic_outcome_month): computed on the fly, a 50,000-patient
registry's 12 months took seconds (docs/benchmarks.md, chronic outcomes); the periodic job stores them per group.

Revision ID: 0041
Revises: 0040
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0041'
down_revision = '0040'
branch_labels = None
depends_on = None

COUNTS = ("registered", "under_care", "lost", "cohort", "controlled", "uncontrolled", "unmeasured", "missed", "due",
          "done")


def upgrade() -> None:
    op.create_table(
        'chronic_outcome_month',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('condition', sa.String(24), nullable=False),
        sa.Column('grouping', sa.String(16), nullable=False),
        sa.Column('group_key', sa.String(100), nullable=False),
        sa.Column('month', sa.String(7), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS],
        sa.Column('as_of', sa.Date(), nullable=False),
        sa.Column('computed_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['institution_id'], ['institution.id'],
                                name=op.f('fk_chronic_outcome_month_institution_id_institution')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_chronic_outcome_month')),
    )
    op.create_index('ix_chronic_outcome_month', 'chronic_outcome_month',
                    ['institution_id', 'condition', 'grouping', 'month', 'group_key'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_chronic_outcome_month', table_name='chronic_outcome_month')
    op.drop_table('chronic_outcome_month')
