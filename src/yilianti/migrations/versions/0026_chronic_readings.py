"""Chronic care: measurements uploaded from home devices (BP monitors, glucose meters).

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    t = 'chronic_reading'
    op.create_table(
        t,
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('patient_id', BigId, nullable=False),
        sa.Column('registration_id', BigId, nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('sbp', sa.Integer(), nullable=True),
        sa.Column('dbp', sa.Integer(), nullable=True),
        sa.Column('glucose', sa.Float(), nullable=True),
        sa.Column('measured_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('device', sa.String(100), nullable=True),
        sa.Column('uploaded_by_user_id', BigId, nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f(f'fk_{t}_patient_id_patient')),
        sa.ForeignKeyConstraint(['registration_id'], ['chronic_registration.id'],
                                name=op.f(f'fk_{t}_registration_id_chronic_registration')),
        sa.ForeignKeyConstraint(['institution_id'], ['institution.id'], name=op.f(f'fk_{t}_institution_id_institution')),
        sa.ForeignKeyConstraint(['uploaded_by_user_id'], ['app_user.id'], name=op.f(f'fk_{t}_uploaded_by_user_id_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index('ix_chronic_reading_once', t, ['patient_id', 'kind', 'measured_at'], unique=True)
    op.create_index(op.f(f'ix_{t}_registration_id'), t, ['registration_id'])


def downgrade() -> None:
    op.drop_table('chronic_reading')
