"""Per-user notification preferences (which kinds by SMS / e-mail) and contacts (notifications/preferences.py).

Revision ID: 0032
Revises: 0031
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'notification_preference',
        sa.Column('user_id', BigId, nullable=False),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('channel', sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE',
                                name=op.f('fk_notification_preference_user_id_app_user')),
        sa.PrimaryKeyConstraint('user_id', 'kind', 'channel', name=op.f('pk_notification_preference')),
    )
    op.create_index('ix_notification_preference_kind', 'notification_preference', ['kind', 'channel'])
    op.create_table(
        'notification_contact',
        sa.Column('user_id', BigId, nullable=False),
        sa.Column('phone', sa.String(20), nullable=True),
        sa.Column('email', sa.String(254), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE',
                                name=op.f('fk_notification_contact_user_id_app_user')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_notification_contact')),
    )


def downgrade() -> None:
    op.drop_table('notification_contact')
    op.drop_index('ix_notification_preference_kind', table_name='notification_preference')
    op.drop_table('notification_preference')
