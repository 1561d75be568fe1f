"""Chronic care: the team lead, contract renewal and termination, registry risk level / TB phase with the history
of every change, and screening rounds with their records.

Revision ID: 0029
Revises: 0028
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column('id', BigId, autoincrement=True, nullable=False)


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column('created_at', UTCDateTime(timezone=True), nullable=False)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], name=op.f(f'fk_{table}_{column}_{target}'))


def upgrade() -> None:
    with op.batch_alter_table('family_doctor_team_member') as b:
        b.add_column(sa.Column('is_lead', sa.Boolean(), nullable=False, server_default=sa.false()))
    t = 'family_doctor_contract'
    with op.batch_alter_table(t) as b:
        b.add_column(sa.Column('renewal_of_id', BigId, nullable=True))
        b.add_column(sa.Column('terminated_on', sa.Date(), nullable=True))
        b.add_column(sa.Column('termination_reason', sa.String(24), nullable=True))
        b.add_column(sa.Column('termination_note', sa.String(300), nullable=True))
        b.create_foreign_key(op.f(f'fk_{t}_renewal_of_id_{t}'), t, ['renewal_of_id'], ['id'])
    with op.batch_alter_table('chronic_registration') as b:
        b.add_column(sa.Column('risk_level', sa.String(16), nullable=True))
        b.add_column(sa.Column('tb_phase', sa.String(16), nullable=True))
        b.add_column(sa.Column('notified_on', sa.Date(), nullable=True))
    t = 'chronic_registration_event'
    op.create_table(
        t, _id(),
        sa.Column('registration_id', BigId, nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('from_value', sa.String(24), nullable=True),
        sa.Column('to_value', sa.String(24), nullable=True),
        sa.Column('effective_on', sa.Date(), nullable=False),
        sa.Column('reason', sa.String(300), nullable=True),
        sa.Column('user_id', BigId, nullable=True),
        _created(),
        _fk(t, 'registration_id', 'chronic_registration'), _fk(t, 'user_id', 'app_user'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index(op.f(f'ix_{t}_registration_id'), t, ['registration_id'])
    t = 'chronic_screening_round'
    op.create_table(
        t, _id(),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('team_id', BigId, nullable=True),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('village', sa.String(100), nullable=True),
        sa.Column('held_on', sa.Date(), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('created_by_user_id', BigId, nullable=True),
        _created(),
        _fk(t, 'institution_id', 'institution'), _fk(t, 'team_id', 'family_doctor_team'),
        _fk(t, 'created_by_user_id', 'app_user'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index('ix_screening_round_inst', t, ['institution_id', 'held_on'])
    t = 'chronic_screening_record'
    op.create_table(
        t, _id(),
        sa.Column('round_id', BigId, nullable=False),
        sa.Column('patient_id', BigId, nullable=False),
        sa.Column('measured_on', sa.Date(), nullable=False),
        sa.Column('sbp', sa.Integer(), nullable=True),
        sa.Column('dbp', sa.Integer(), nullable=True),
        sa.Column('fasting_glucose', sa.Float(), nullable=True),
        sa.Column('finding', sa.String(16), nullable=False),
        sa.Column('suggestion', sa.String(24), nullable=True),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('handled_by_user_id', BigId, nullable=True),
        sa.Column('handled_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('recorded_by_user_id', BigId, nullable=True),
        _created(),
        _fk(t, 'round_id', 'chronic_screening_round'), _fk(t, 'patient_id', 'patient'),
        _fk(t, 'handled_by_user_id', 'app_user'), _fk(t, 'recorded_by_user_id', 'app_user'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index('ix_screening_record_round', t, ['round_id', 'patient_id'], unique=True)
    op.create_index('ix_screening_record_patient', t, ['patient_id', 'measured_on'])


def downgrade() -> None:
    op.drop_table('chronic_screening_record')
    op.drop_table('chronic_screening_round')
    op.drop_table('chronic_registration_event')
    with op.batch_alter_table('chronic_registration') as b:
        for c in ('notified_on', 'tb_phase', 'risk_level'):
            b.drop_column(c)
    t = 'family_doctor_contract'
    with op.batch_alter_table(t) as b:
        b.drop_constraint(op.f(f'fk_{t}_renewal_of_id_{t}'), type_='foreignkey')
        for c in ('termination_note', 'termination_reason', 'terminated_on', 'renewal_of_id'):
            b.drop_column(c)
    with op.batch_alter_table('family_doctor_team_member') as b:
        b.drop_column('is_lead')
