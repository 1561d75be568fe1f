"""empi online: source records with blocking keys, review queue, do-not-match, merge events

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import yilianti.models.base

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TS = yilianti.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'patient_record',
        sa.Column('patient_id', ID, nullable=False),
        sa.Column('institution_id', ID, nullable=False),
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('sex', sa.String(length=2), nullable=True),
        sa.Column('birth_date', sa.Date(), nullable=True),
        sa.Column('phone', sa.String(length=20), nullable=True),
        sa.Column('address', sa.String(length=300), nullable=True),
        sa.Column('rid', sa.String(length=18), nullable=True),
        sa.Column('name_key', sa.String(length=80), nullable=True),
        sa.Column('surname_key', sa.String(length=40), nullable=True),
        sa.Column('given_key', sa.String(length=60), nullable=True),
        sa.Column('birth_key', sa.String(length=8), nullable=True),
        sa.Column('birth_year', sa.Integer(), nullable=True),
        sa.Column('phone_key', sa.String(length=20), nullable=True),
        sa.Column('link_method', sa.String(length=16), nullable=False),
        sa.Column('link_score', sa.Float(), nullable=True),
        sa.Column('rules_version', sa.String(length=16), nullable=False),
        sa.Column('updated_at', TS, nullable=False),
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.ForeignKeyConstraint(['institution_id'], ['institution.id'],
                                name=op.f('fk_patient_record_institution_id_institution')),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_record_patient_id_patient')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_record')),
    )
    with op.batch_alter_table('patient_record', schema=None) as batch_op:
        batch_op.create_index('ix_patient_record_name_year', ['name_key', 'birth_year'], unique=False)
        batch_op.create_index('ix_patient_record_birth_surname', ['birth_key', 'surname_key'], unique=False)
        batch_op.create_index('ix_patient_record_given_birth', ['given_key', 'birth_key'], unique=False)
        batch_op.create_index('ix_patient_record_phone', ['phone_key'], unique=False)
        batch_op.create_index('ix_patient_record_rid', ['rid'], unique=False)
        batch_op.create_index('ix_patient_record_patient', ['patient_id'], unique=False)
        batch_op.create_index('ix_patient_record_inst_patient', ['institution_id', 'patient_id'], unique=False)

    op.create_table(
        'match_candidate',
        sa.Column('record_id', ID, nullable=False),
        sa.Column('other_record_id', ID, nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('explanation', sa.JSON(), nullable=False),
        sa.Column('rules_version', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('decided_by_user_id', ID, nullable=True),
        sa.Column('decided_at', TS, nullable=True),
        sa.Column('decision_note', sa.Text(), nullable=True),
        sa.Column('merge_event_id', ID, nullable=True),
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.CheckConstraint("status IN ('open','confirmed','rejected','superseded')",
                           name=op.f('ck_match_candidate_status')),
        sa.ForeignKeyConstraint(['decided_by_user_id'], ['app_user.id'],
                                name=op.f('fk_match_candidate_decided_by_user_id_app_user')),
        sa.ForeignKeyConstraint(['other_record_id'], ['patient_record.id'],
                                name=op.f('fk_match_candidate_other_record_id_patient_record')),
        sa.ForeignKeyConstraint(['record_id'], ['patient_record.id'],
                                name=op.f('fk_match_candidate_record_id_patient_record')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_match_candidate')),
        sa.UniqueConstraint('record_id', 'other_record_id', name=op.f('uq_match_candidate_record_id')),
    )
    with op.batch_alter_table('match_candidate', schema=None) as batch_op:
        batch_op.create_index('ix_match_candidate_status', ['status', 'created_at'], unique=False)

    op.create_table(
        'do_not_match',
        sa.Column('patient_a_id', ID, nullable=False),
        sa.Column('patient_b_id', ID, nullable=False),
        sa.Column('candidate_id', ID, nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('created_by_user_id', ID, nullable=True),
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.CheckConstraint('patient_a_id < patient_b_id', name=op.f('ck_do_not_match_ordered')),
        sa.ForeignKeyConstraint(['candidate_id'], ['match_candidate.id'],
                                name=op.f('fk_do_not_match_candidate_id_match_candidate')),
        sa.ForeignKeyConstraint(['created_by_user_id'], ['app_user.id'],
                                name=op.f('fk_do_not_match_created_by_user_id_app_user')),
        sa.ForeignKeyConstraint(['patient_a_id'], ['patient.id'], name=op.f('fk_do_not_match_patient_a_id_patient')),
        sa.ForeignKeyConstraint(['patient_b_id'], ['patient.id'], name=op.f('fk_do_not_match_patient_b_id_patient')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_do_not_match')),
        sa.UniqueConstraint('patient_a_id', 'patient_b_id', name=op.f('uq_do_not_match_patient_a_id')),
    )
    with op.batch_alter_table('do_not_match', schema=None) as batch_op:
        batch_op.create_index('ix_do_not_match_b', ['patient_b_id'], unique=False)

    op.create_table(
        'merge_event',
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('survivor_id', ID, nullable=False),
        sa.Column('merged_id', ID, nullable=False),
        sa.Column('reverses_id', ID, nullable=True),
        sa.Column('undone_at', TS, nullable=True),
        sa.Column('candidate_id', ID, nullable=True),
        sa.Column('moved', sa.JSON(), nullable=False),
        sa.Column('snapshot', sa.JSON(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('by_user_id', ID, nullable=True),
        sa.Column('at', TS, nullable=False),
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.CheckConstraint("kind IN ('merge','unmerge')", name=op.f('ck_merge_event_kind')),
        sa.ForeignKeyConstraint(['by_user_id'], ['app_user.id'], name=op.f('fk_merge_event_by_user_id_app_user')),
        sa.ForeignKeyConstraint(['candidate_id'], ['match_candidate.id'],
                                name=op.f('fk_merge_event_candidate_id_match_candidate')),
        sa.ForeignKeyConstraint(['reverses_id'], ['merge_event.id'],
                                name=op.f('fk_merge_event_reverses_id_merge_event')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_merge_event')),
    )
    with op.batch_alter_table('merge_event', schema=None) as batch_op:
        batch_op.create_index('ix_merge_event_survivor', ['survivor_id'], unique=False)
        batch_op.create_index('ix_merge_event_merged', ['merged_id'], unique=False)

    # persons registered before the online EMPI: give each a source record so later registrations find them
    from yilianti.empi.backfill import backfill

    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table('merge_event')
    op.drop_table('do_not_match')
    op.drop_table('match_candidate')
    op.drop_table('patient_record')
