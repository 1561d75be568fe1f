"""Encounters imported from the members' HIS and the out-of-county visit register from the insurance settlement
data (issue 19: the national indicators 7–13 computed); an indicator may be the growth of another (10b).

Revision ID: 0038
Revises: 0037
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0038'
down_revision = '0037'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'encounter',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('source_no', sa.String(64), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('department_name', sa.String(64), nullable=True),
        sa.Column('department_id', BigId, nullable=True),
        sa.Column('visit_date', sa.Date(), nullable=False),
        sa.Column('discharge_date', sa.Date(), nullable=True),
        sa.Column('day', sa.Date(), nullable=True),
        sa.Column('patient_id', BigId, nullable=True),
        sa.Column('total_cost', sa.Float(), nullable=False),
        sa.Column('insurance_paid', sa.Float(), nullable=False),
        sa.Column('tcm', sa.Boolean(), nullable=False),
        sa.Column('imported_by_user_id', BigId, nullable=True),
        sa.Column('imported_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['institution_id'], ['institution.id'],
                                name=op.f('fk_encounter_institution_id_institution')),
        sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_encounter_department_id_department')),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_encounter_patient_id_patient')),
        sa.ForeignKeyConstraint(['imported_by_user_id'], ['app_user.id'],
                                name=op.f('fk_encounter_imported_by_user_id_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_encounter')),
        sa.UniqueConstraint('institution_id', 'source_no', name=op.f('uq_encounter_institution_id')),
    )
    op.create_index('ix_encounter_day_institution', 'encounter', ['day', 'institution_id'])
    op.create_index('ix_encounter_patient_visit', 'encounter', ['patient_id', 'visit_date'])
    op.create_table(
        'out_of_county_visit',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('alliance_id', BigId, nullable=False),
        sa.Column('home_institution_id', BigId, nullable=True),
        sa.Column('settlement_no', sa.String(64), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('hospital', sa.String(200), nullable=False),
        sa.Column('visit_date', sa.Date(), nullable=False),
        sa.Column('discharge_date', sa.Date(), nullable=True),
        sa.Column('day', sa.Date(), nullable=True),
        sa.Column('total_cost', sa.Float(), nullable=False),
        sa.Column('insurance_paid', sa.Float(), nullable=False),
        sa.Column('imported_by_user_id', BigId, nullable=True),
        sa.Column('imported_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['alliance_id'], ['alliance.id'], name=op.f('fk_out_of_county_visit_alliance_id_alliance')),
        sa.ForeignKeyConstraint(['home_institution_id'], ['institution.id'],
                                name=op.f('fk_out_of_county_visit_home_institution_id_institution')),
        sa.ForeignKeyConstraint(['imported_by_user_id'], ['app_user.id'],
                                name=op.f('fk_out_of_county_visit_imported_by_user_id_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_out_of_county_visit')),
        sa.UniqueConstraint('alliance_id', 'settlement_no', name=op.f('uq_out_of_county_visit_alliance_id')),
    )
    op.create_index('ix_out_of_county_visit_alliance_day', 'out_of_county_visit', ['alliance_id', 'day'])
    with op.batch_alter_table('indicator') as batch:
        batch.add_column(sa.Column('growth_of', sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('indicator') as batch:
        batch.drop_column('growth_of')
    op.drop_table('out_of_county_visit')
    op.drop_table('encounter')
