"""Patient picker search keys: name initials (拼音首字母), and blind indexes of the last four
characters of the phone and of each identifier (resident ID, record number...).

The type-ahead patient picker finds a patient by "zxm" (赵小明) or by "5678" (the end of the phone
or of the resident ID). The phone and the identifiers are encrypted, so the ends are kept as HMAC
blind indexes (kit/crypto.py `tail_index`; kind "tail"), never in clear; the initials come from the
name, which is stored in clear. Existing rows are filled here with the application's keys;
`yilianti keys rotate --reindex` recomputes the tails with the other blind indexes.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade() -> None:
    from yilianti.empi.normalise import name_initials
    from yilianti.kit import crypto

    op.add_column('patient', sa.Column('name_initials', sa.String(length=16), nullable=True))
    op.add_column('patient', sa.Column('phone_tail_bidx', sa.String(length=32), nullable=True))
    op.create_index('ix_patient_name_initials', 'patient', ['name_initials'], unique=False)
    op.create_index('ix_patient_phone_tail_bidx', 'patient', ['phone_tail_bidx'], unique=False)
    with op.batch_alter_table('patient_identifier', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tail_bidx', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_patient_identifier_tail_bidx', ['tail_bidx'], unique=False)
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.text("SELECT id, name, phone_enc FROM patient WHERE id > :last ORDER BY id LIMIT :n"),
                            {"last": last, "n": BATCH}).all()
        if not rows:
            break
        conn.execute(sa.text("UPDATE patient SET name_initials = :i, phone_tail_bidx = :t WHERE id = :id"),
                     [{"id": pid, "i": name_initials(name or ""),
                       "t": crypto.tail_index(crypto.decrypt(token)) if token else None}
                      for pid, name, token in rows])
        last = rows[-1][0]
    last = 0
    while True:
        rows = conn.execute(sa.text("SELECT id, value_enc FROM patient_identifier WHERE id > :last "
                                    "ORDER BY id LIMIT :n"),
                            {"last": last, "n": BATCH}).all()
        if not rows:
            break
        conn.execute(sa.text("UPDATE patient_identifier SET tail_bidx = :t WHERE id = :id"),
                     [{"id": iid, "t": crypto.tail_index(crypto.decrypt(token))} for iid, token in rows])
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('patient_identifier', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_identifier_tail_bidx')
        batch_op.drop_column('tail_bidx')
    # not batch: the patient table is referenced by many others (SQLite cannot drop and recreate it)
    op.drop_index('ix_patient_phone_tail_bidx', table_name='patient')
    op.drop_index('ix_patient_name_initials', table_name='patient')
    op.drop_column('patient', 'phone_tail_bidx')
    op.drop_column('patient', 'name_initials')
