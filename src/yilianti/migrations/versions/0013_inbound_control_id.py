"""inbound message control id index: a resent HL7 message (same sender + MSH-10) is recognised

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_inbound_message_control', 'inbound_message', ['channel', 'control_id'])


def downgrade() -> None:
    op.drop_index('ix_inbound_message_control', table_name='inbound_message')
