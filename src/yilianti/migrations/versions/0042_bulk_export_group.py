"""A Group's bulk export (`Group/{id}/$export`) records the group it exports.

Revision ID: 0042
Revises: 0041
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0042'
down_revision = '0041'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('bulk_export') as batch:
        batch.add_column(sa.Column('group_id', sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bulk_export') as batch:
        batch.drop_column('group_id')
