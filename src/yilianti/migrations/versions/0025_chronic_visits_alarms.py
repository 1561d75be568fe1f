"""Chronic care: the national visit record's fields on a follow-up, alarms from visits and lab results,
SMS-style reminders (one per follow-up and due date) and the phone-call log.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column('id', BigId, autoincrement=True, nullable=False)


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column('created_at', UTCDateTime(timezone=True), nullable=False)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], name=op.f(f'fk_{table}_{column}_{target}'))


VISIT_COLUMNS = (
    ('visit_mode', sa.String(16)), ('heart_rate', sa.Integer()), ('weight_kg', sa.Float()),
    ('height_cm', sa.Float()), ('bmi', sa.Float()), ('hba1c', sa.Float()), ('adherence', sa.String(16)),
    ('adverse', sa.String(16)), ('visit_class', sa.String(16)), ('referral_reason', sa.String(300)),
    ('detail', sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table('chronic_follow_up') as batch:
        for name, type_ in VISIT_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    t = 'chronic_alarm'
    op.create_table(
        t, _id(),
        sa.Column('source_key', sa.String(64), nullable=False),
        sa.Column('source', sa.String(16), nullable=False),
        sa.Column('patient_id', BigId, nullable=False),
        sa.Column('registration_id', BigId, nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('team_id', BigId, nullable=True),
        sa.Column('responsible_user_id', BigId, nullable=True),
        sa.Column('kind', sa.String(24), nullable=False),
        sa.Column('value_text', sa.String(300), nullable=False),
        sa.Column('measured_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('acknowledged_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('acknowledged_by_user_id', BigId, nullable=True),
        sa.Column('ack_note', sa.String(300), nullable=True),
        sa.Column('escalated_at', UTCDateTime(timezone=True), nullable=True),
        _created(),
        _fk(t, 'patient_id', 'patient'), _fk(t, 'registration_id', 'chronic_registration'),
        _fk(t, 'institution_id', 'institution'), _fk(t, 'team_id', 'family_doctor_team'),
        _fk(t, 'responsible_user_id', 'app_user'), _fk(t, 'acknowledged_by_user_id', 'app_user'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index('ix_chronic_alarm_source', t, ['source_key'], unique=True)
    op.create_index('ix_chronic_alarm_inst', t, ['institution_id', 'acknowledged_at'])
    op.create_index(op.f(f'ix_{t}_patient_id'), t, ['patient_id'])
    t = 'chronic_reminder'
    op.create_table(
        t, _id(),
        sa.Column('follow_up_id', BigId, nullable=False),
        sa.Column('patient_id', BigId, nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('channel', sa.String(16), nullable=False),
        sa.Column('text', sa.String(500), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('sent_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('error', sa.String(300), nullable=True),
        _created(),
        _fk(t, 'follow_up_id', 'chronic_follow_up'), _fk(t, 'patient_id', 'patient'),
        _fk(t, 'institution_id', 'institution'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index('ix_chronic_reminder_once', t, ['follow_up_id', 'due_on', 'channel'], unique=True)
    op.create_index('ix_chronic_reminder_inst', t, ['institution_id', 'status'])
    t = 'chronic_call'
    op.create_table(
        t, _id(),
        sa.Column('follow_up_id', BigId, nullable=False),
        sa.Column('patient_id', BigId, nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('user_id', BigId, nullable=False),
        sa.Column('called_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(24), nullable=False),
        sa.Column('note', sa.String(300), nullable=True),
        _created(),
        _fk(t, 'follow_up_id', 'chronic_follow_up'), _fk(t, 'patient_id', 'patient'),
        _fk(t, 'institution_id', 'institution'), _fk(t, 'user_id', 'app_user'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
    )
    op.create_index(op.f(f'ix_{t}_follow_up_id'), t, ['follow_up_id'])


def downgrade() -> None:
    for t in ('chronic_call', 'chronic_reminder', 'chronic_alarm'):
        op.drop_table(t)
    with op.batch_alter_table('chronic_follow_up') as batch:
        for name, _ in reversed(VISIT_COLUMNS):
            batch.drop_column(name)
