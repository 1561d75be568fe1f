"""inbound_message: raw_bytes and reason_code — a refused (AR) HL7 message is kept byte for byte.

A NUL byte, bytes not valid in the message's character set or an unknown MSH-18 leave no text to
store (PostgreSQL's text refuses NUL); the bytes are kept for re-processing, the coded reason
(hl7_rules.Hl7Problem) is shown with its label in the quarantine.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('inbound_message', sa.Column('reason_code', sa.String(32), nullable=True))
    op.add_column('inbound_message', sa.Column('raw_bytes', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column('inbound_message', 'raw_bytes')
    op.drop_column('inbound_message', 'reason_code')
