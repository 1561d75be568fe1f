"""patient_record.rid_key: the blind index of the record's resident ID.

Matching compares a candidate record's resident ID with the registration's by this HMAC
(kit/crypto.py, kind "id") instead of decrypting every candidate's ciphertext (issue 5, B6).
Existing rows are filled here with the application's keys; `yilianti keys rotate --reindex`
recomputes it with the other blind indexes.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade() -> None:
    from yilianti.kit import crypto

    op.add_column('patient_record', sa.Column('rid_key', sa.String(length=32), nullable=True))
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.text("SELECT id, rid FROM patient_record WHERE id > :last AND rid IS NOT NULL "
                                    "ORDER BY id LIMIT :n"), {"last": last, "n": BATCH}).all()
        if not rows:
            return
        conn.execute(sa.text("UPDATE patient_record SET rid_key = :k WHERE id = :id"),
                     [{"id": rid_id, "k": crypto.blind_index("id", crypto.decrypt(token))} for rid_id, token in rows])
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('patient_record', schema=None) as batch_op:
        batch_op.drop_column('rid_key')
