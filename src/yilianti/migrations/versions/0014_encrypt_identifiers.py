"""personal data at rest: identifier values and phone numbers encrypted, with blind indexes

patient.phone → phone_enc (Fernet token) + phone_bidx (HMAC of the normalised phone);
patient.guardian_phone → ciphertext; patient_identifier.value → value_enc + value_bidx, unique
(value_bidx, authority); patient_record.phone / rid → ciphertext, phone_key → blind index.
Existing rows are converted here with the application's keys (kit/crypto.py).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

BATCH = 2000


def _convert(table: str, columns: list[str], fn: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite rows in id order, BATCH at a time (fn: old values → new values)."""
    conn = op.get_bind()
    cols = ", ".join(columns)
    last = 0
    while True:
        rows = conn.execute(sa.text(f"SELECT id, {cols} FROM {table} WHERE id > :last ORDER BY id LIMIT :n"),
                            {"last": last, "n": BATCH}).mappings().all()
        if not rows:
            return
        params = []
        for row in rows:
            new = fn(dict(row))
            if new:
                params.append({"_id": row["id"], **new})
        if params:
            keys = [k for k in params[0] if k != "_id"]
            sets = ", ".join(f"{k} = :{k}" for k in keys)
            conn.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :_id"), params)
        last = rows[-1]["id"]


def _enc(value: str | None) -> str | None:
    from yilianti.kit import crypto

    return None if value is None else crypto.encrypt(value)


def _dec(value: str | None) -> str | None:
    from yilianti.kit import crypto

    return None if value is None else crypto.decrypt(value)


def _bidx(kind: str, value: str | None) -> str | None:
    from yilianti.kit import crypto

    return crypto.blind_index(kind, value)


def _norm_phone(value: str | None) -> str | None:
    from yilianti.empi.normalise import phone

    return phone(value) if value else None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _retype(table: str, column: str, old: sa.types.TypeEngine, new: sa.types.TypeEngine) -> None:
    """Widen a column. SQLite does not enforce lengths, and recreating `patient` or `patient_record`
    there would trip over the rows that reference them: only PostgreSQL changes the type."""
    if not _sqlite():
        op.alter_column(table, column, existing_type=old, type_=new)


# patient and patient_record are referenced by other tables: only operations SQLite does in place
# (add/drop column, indexes) are used on them; patient_identifier (referenced by none) is rebuilt there.


def upgrade() -> None:
    op.add_column('patient', sa.Column('phone_enc', sa.Text(), nullable=True))
    op.add_column('patient', sa.Column('phone_bidx', sa.String(length=32), nullable=True))
    _retype('patient', 'guardian_phone', sa.String(length=20), sa.Text())
    _convert('patient', ['phone', 'guardian_phone'], lambda r: {
        'phone_enc': _enc(r['phone']), 'phone_bidx': _bidx('phone', r['phone']),
        'guardian_phone': _enc(r['guardian_phone'])} if r['phone'] or r['guardian_phone'] else {})
    op.drop_column('patient', 'phone')
    op.create_index('ix_patient_phone_bidx', 'patient', ['phone_bidx'], unique=False)

    with op.batch_alter_table('patient_identifier', schema=None) as batch_op:
        batch_op.add_column(sa.Column('value_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('value_bidx', sa.String(length=32), nullable=True))
    _convert('patient_identifier', ['value'], lambda r: {
        'value_enc': _enc(r['value']), 'value_bidx': _bidx('id', r['value'])})
    with op.batch_alter_table('patient_identifier', schema=None) as batch_op:
        batch_op.drop_constraint('uq_patient_identifier_authority', type_='unique')
        batch_op.drop_column('value')
        batch_op.alter_column('value_enc', existing_type=sa.Text(), nullable=False)
        batch_op.alter_column('value_bidx', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_patient_identifier_value_bidx'), ['value_bidx', 'authority'])

    op.drop_index('ix_patient_record_rid', table_name='patient_record')
    _retype('patient_record', 'phone', sa.String(length=20), sa.Text())
    _retype('patient_record', 'rid', sa.String(length=18), sa.Text())
    _retype('patient_record', 'phone_key', sa.String(length=20), sa.String(length=32))
    _convert('patient_record', ['phone', 'rid', 'phone_key'], lambda r: {
        'phone': _enc(r['phone']), 'rid': _enc(r['rid']), 'phone_key': _bidx('phone', r['phone_key'])}
        if r['phone'] or r['rid'] else {})


def downgrade() -> None:
    _convert('patient_record', ['phone', 'rid'], lambda r: {
        'phone': _dec(r['phone']), 'rid': _dec(r['rid']), 'phone_key': _norm_phone(_dec(r['phone']))}
        if r['phone'] or r['rid'] else {})
    _retype('patient_record', 'phone_key', sa.String(length=32), sa.String(length=20))
    _retype('patient_record', 'rid', sa.Text(), sa.String(length=18))
    _retype('patient_record', 'phone', sa.Text(), sa.String(length=20))
    op.create_index('ix_patient_record_rid', 'patient_record', ['rid'], unique=False)

    with op.batch_alter_table('patient_identifier', schema=None) as batch_op:
        batch_op.add_column(sa.Column('value', sa.String(length=64), nullable=True))
    _convert('patient_identifier', ['value_enc'], lambda r: {'value': _dec(r['value_enc'])})
    with op.batch_alter_table('patient_identifier', schema=None) as batch_op:
        batch_op.drop_constraint('uq_patient_identifier_value_bidx', type_='unique')
        batch_op.drop_column('value_bidx')
        batch_op.drop_column('value_enc')
        batch_op.alter_column('value', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint('uq_patient_identifier_authority', ['authority', 'value'])

    op.add_column('patient', sa.Column('phone', sa.String(length=20), nullable=True))
    _convert('patient', ['phone_enc', 'guardian_phone'], lambda r: {
        'phone': _dec(r['phone_enc']), 'guardian_phone': _dec(r['guardian_phone'])}
        if r['phone_enc'] or r['guardian_phone'] else {})
    op.drop_index('ix_patient_phone_bidx', table_name='patient')
    op.drop_column('patient', 'phone_bidx')
    op.drop_column('patient', 'phone_enc')
    _retype('patient', 'guardian_phone', sa.Text(), sa.String(length=20))
