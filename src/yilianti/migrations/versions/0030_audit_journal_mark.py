"""The read-audit journal's marks (audit/batch.py): how far each web process's journal is in audit_event.

Revision ID: 0030
Revises: 0029
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_journal_mark',
        sa.Column('journal', sa.String(64), nullable=False),
        sa.Column('seq', BigId, nullable=False),
        sa.PrimaryKeyConstraint('journal', name=op.f('pk_audit_journal_mark')),
    )


def downgrade() -> None:
    op.drop_table('audit_journal_mark')
