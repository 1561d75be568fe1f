"""The help the lead hospital sends down (帮扶): one row per posting, clinic series, surgery guided, lecture,
trainee, co-built department, technique, equipment or funds.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'assistance_record',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('alliance_id', BigId, nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('from_institution_id', BigId, nullable=False),
        sa.Column('to_institution_id', BigId, nullable=False),
        sa.Column('practitioner_id', BigId, nullable=True),
        sa.Column('person', sa.String(64), nullable=True),
        sa.Column('title', sa.String(32), nullable=True),
        sa.Column('post', sa.String(64), nullable=True),
        sa.Column('subject', sa.String(200), nullable=True),
        sa.Column('start_date', sa.Date(), nullable=False),
        sa.Column('end_date', sa.Date(), nullable=True),
        sa.Column('person_days', sa.Float(), nullable=False),
        sa.Column('sessions', sa.Integer(), nullable=False),
        sa.Column('patients', sa.Integer(), nullable=False),
        sa.Column('surgeries', sa.Integer(), nullable=False),
        sa.Column('surgeries_grade34', sa.Integer(), nullable=False),
        sa.Column('amount_yuan', sa.Float(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('entered_by_user_id', BigId, nullable=True),
        sa.Column('entered_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['alliance_id'], ['alliance.id'], name=op.f('fk_assistance_record_alliance_id_alliance')),
        sa.ForeignKeyConstraint(['from_institution_id'], ['institution.id'],
                                name=op.f('fk_assistance_record_from_institution_id_institution')),
        sa.ForeignKeyConstraint(['to_institution_id'], ['institution.id'],
                                name=op.f('fk_assistance_record_to_institution_id_institution')),
        sa.ForeignKeyConstraint(['practitioner_id'], ['practitioner.id'],
                                name=op.f('fk_assistance_record_practitioner_id_practitioner')),
        sa.ForeignKeyConstraint(['entered_by_user_id'], ['app_user.id'],
                                name=op.f('fk_assistance_record_entered_by_user_id_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_assistance_record')),
    )
    op.create_index(op.f('ix_assistance_record_alliance_id'), 'assistance_record', ['alliance_id'])
    op.create_index(op.f('ix_assistance_record_to_institution_id'), 'assistance_record', ['to_institution_id'])


def downgrade() -> None:
    op.drop_table('assistance_record')
