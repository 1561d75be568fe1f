"""Chronic disease management: family-doctor teams and members, contracts, the chronic registry and its
follow-ups.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column('id', BigId, autoincrement=True, nullable=False)


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column('created_at', UTCDateTime(timezone=True), nullable=False)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], name=op.f(f'fk_{table}_{column}_{target}'))


def upgrade() -> None:
    t = 'family_doctor_team'
    op.create_table(
        t, _id(),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('village', sa.String(100), nullable=True),
        _created(),
        _fk(t, 'institution_id', 'institution'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index(op.f(f'ix_{t}_institution_id'), t, ['institution_id'])
    t = 'family_doctor_team_member'
    op.create_table(
        t, _id(),
        sa.Column('team_id', BigId, nullable=False),
        sa.Column('user_id', BigId, nullable=False),
        sa.Column('role', sa.String(24), nullable=False),
        _created(),
        _fk(t, 'team_id', 'family_doctor_team'), _fk(t, 'user_id', 'app_user'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index('ix_team_member_team', t, ['team_id', 'user_id'], unique=True)
    t = 'family_doctor_contract'
    op.create_table(
        t, _id(),
        sa.Column('patient_id', BigId, nullable=False),
        sa.Column('team_id', BigId, nullable=False),
        sa.Column('package', sa.String(24), nullable=False),
        sa.Column('start_on', sa.Date(), nullable=False),
        sa.Column('end_on', sa.Date(), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('signed_by_user_id', BigId, nullable=True),
        _created(),
        _fk(t, 'patient_id', 'patient'), _fk(t, 'team_id', 'family_doctor_team'),
        _fk(t, 'signed_by_user_id', 'app_user'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index('ix_contract_team', t, ['team_id', 'status'])
    op.create_index('ix_contract_patient', t, ['patient_id'])
    t = 'chronic_registration'
    op.create_table(
        t, _id(),
        sa.Column('patient_id', BigId, nullable=False),
        sa.Column('condition', sa.String(24), nullable=False),
        sa.Column('icd10', sa.String(16), nullable=False),
        sa.Column('enrolled_on', sa.Date(), nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('team_id', BigId, nullable=True),
        sa.Column('responsible_user_id', BigId, nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        _created(),
        _fk(t, 'patient_id', 'patient'), _fk(t, 'institution_id', 'institution'),
        _fk(t, 'team_id', 'family_doctor_team'), _fk(t, 'responsible_user_id', 'app_user'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index('ix_chronic_registration_patient', t, ['patient_id', 'condition'])
    op.create_index('ix_chronic_registration_inst', t, ['institution_id', 'status'])
    t = 'chronic_follow_up'
    op.create_table(
        t, _id(),
        sa.Column('registration_id', BigId, nullable=False),
        sa.Column('patient_id', BigId, nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('team_id', BigId, nullable=True),
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('reason', sa.String(24), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('done_on', sa.Date(), nullable=True),
        sa.Column('done_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('recorded_by_user_id', BigId, nullable=True),
        sa.Column('sbp', sa.Integer(), nullable=True),
        sa.Column('dbp', sa.Integer(), nullable=True),
        sa.Column('fasting_glucose', sa.Float(), nullable=True),
        sa.Column('classification', sa.String(24), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        _created(),
        _fk(t, 'registration_id', 'chronic_registration'), _fk(t, 'patient_id', 'patient'),
        _fk(t, 'institution_id', 'institution'), _fk(t, 'team_id', 'family_doctor_team'),
        _fk(t, 'recorded_by_user_id', 'app_user'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index(op.f(f'ix_{t}_registration_id'), t, ['registration_id'])
    op.create_index('ix_chronic_follow_up_team', t, ['team_id', 'status', 'due_on'])
    op.create_index('ix_chronic_follow_up_inst', t, ['institution_id', 'status', 'due_on'])


def downgrade() -> None:
    for t in ('chronic_follow_up', 'chronic_registration', 'family_doctor_contract', 'family_doctor_team_member',
              'family_doctor_team'):
        op.drop_table(t)
