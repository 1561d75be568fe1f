"""diagnostic_order: index (patient_id, item_code, reported_at) instead of (patient_id).

The order-time recognition lookup (recognition/fastpath.py, service._lookup; B3) reads a patient's
resulted orders for one item inside its validity window. With the patient-only index every order of
the patient was fetched from the heap and most were thrown away (≈ 10 random heap pages per lookup
at 10 results per patient); with the item and the report time in the index only the item's orders
inside the window are visited. The new index still serves every patient_id-only query, so the old
one is dropped (one index to maintain on insert, not two).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('diagnostic_order', schema=None) as batch_op:
        batch_op.create_index('ix_diagnostic_order_patient_item', ['patient_id', 'item_code', 'reported_at'],
                              unique=False)
        batch_op.drop_index('ix_diagnostic_order_patient')


def downgrade() -> None:
    with op.batch_alter_table('diagnostic_order', schema=None) as batch_op:
        batch_op.create_index('ix_diagnostic_order_patient', ['patient_id'], unique=False)
        batch_op.drop_index('ix_diagnostic_order_patient_item')
