"""A chronic-care alarm nobody acknowledged is escalated to the team's head (团队长) by name: who it went to.

Revision ID: 0037
Revises: 0036
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId

revision = '0037'
down_revision = '0036'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chronic_alarm') as batch:
        batch.add_column(sa.Column('escalated_to_user_id', BigId, nullable=True))
        batch.create_foreign_key(op.f('fk_chronic_alarm_escalated_to_user_id_app_user'), 'app_user',
                                 ['escalated_to_user_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('chronic_alarm') as batch:
        batch.drop_constraint(op.f('fk_chronic_alarm_escalated_to_user_id_app_user'), type_='foreignkey')
        batch.drop_column('escalated_to_user_id')
