"""Faster cockpit rollups (B5). The daily rollups without a foreign key to the alliance: they are derived rows, rebuilt in bulk
(`yilianti cockpit rebuild`), and the key's check cost a trigger call per row written — about a quarter of a
rebuild's time over millions of referrals (B5). An alliance is never deleted (it is deactivated), and a rebuild
only writes the ids of the alliances it reads. And a partial index of the up-referrals that reserved a bed (few):
the rollups split down-referrals by them, which read every referral for each half year rebuilt.

Revision ID: 0035
Revises: 0034
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None

TABLES = ('cockpit_rollup', 'cockpit_rollup_day')


def upgrade() -> None:
    op.create_index('ix_referral_bed_reservation', 'referral', ['bed_reservation_id'],
                    postgresql_where=text('bed_reservation_id IS NOT NULL'),
                    sqlite_where=text('bed_reservation_id IS NOT NULL'))
    for t in TABLES:
        with op.batch_alter_table(t) as b:
            b.drop_constraint(op.f(f'fk_{t}_alliance_id_alliance'), type_='foreignkey')


def downgrade() -> None:
    op.drop_index('ix_referral_bed_reservation', table_name='referral')
    for t in TABLES:
        with op.batch_alter_table(t) as b:
            b.create_foreign_key(op.f(f'fk_{t}_alliance_id_alliance'), 'alliance', ['alliance_id'], ['id'])
