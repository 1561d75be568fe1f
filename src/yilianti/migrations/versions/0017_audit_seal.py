"""audit_seal: the audit hash chain (audit/chain.py), append-only like audit_event.

Each link seals the audit rows after the previous link with the previous link's hash; the newest
link's hash is also written outside the database, so `yilianti audit verify` detects a removed or
altered row even when triggers were bypassed by someone with database rights.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

APPEND_ONLY_PG = """
CREATE OR REPLACE FUNCTION audit_seal_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_seal is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_seal_no_update BEFORE UPDATE OR DELETE ON audit_seal
  FOR EACH ROW EXECUTE FUNCTION audit_seal_append_only();
CREATE TRIGGER audit_seal_no_truncate BEFORE TRUNCATE ON audit_seal
  FOR EACH STATEMENT EXECUTE FUNCTION audit_seal_append_only();
"""


def upgrade() -> None:
    op.create_table(
        'audit_seal',
        sa.Column('sealed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('after_id', BigId, nullable=False),
        sa.Column('to_id', BigId, nullable=False),
        sa.Column('row_count', sa.Integer(), nullable=False),
        sa.Column('ids', sa.Text(), nullable=False),
        sa.Column('digests', sa.LargeBinary(), nullable=False),
        sa.Column('algorithm', sa.String(length=16), nullable=False),
        sa.Column('prev_hash', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_seal')),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_PG)
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_seal_no_{event.lower()} BEFORE {event} ON audit_seal "
                       "BEGIN SELECT RAISE(ABORT, 'audit_seal is append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE audit_seal")
        op.execute("DROP FUNCTION IF EXISTS audit_seal_append_only()")
    else:
        op.drop_table('audit_seal')
