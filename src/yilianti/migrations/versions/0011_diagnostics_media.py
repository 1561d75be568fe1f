"""diagnostics media: ECG recordings (waveform + measurements), Orthanc forwarding marks

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import yilianti.models.base

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = yilianti.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('ecg_recording',
    sa.Column('order_id', _ID, nullable=False),
    sa.Column('patient_id', _ID, nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('imaging_instance_id', _ID, nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=True),
    sa.Column('sample_rate', sa.Float(), nullable=False),
    sa.Column('sample_count', sa.Integer(), nullable=False),
    sa.Column('leads', sa.JSON(), nullable=False),
    sa.Column('samples', sa.LargeBinary(), nullable=False),
    sa.Column('auto', sa.JSON(), nullable=True),
    sa.Column('heart_rate', sa.Integer(), nullable=True),
    sa.Column('pr_ms', sa.Integer(), nullable=True),
    sa.Column('qrs_ms', sa.Integer(), nullable=True),
    sa.Column('qt_ms', sa.Integer(), nullable=True),
    sa.Column('qtc_ms', sa.Integer(), nullable=True),
    sa.Column('axis_deg', sa.Integer(), nullable=True),
    sa.Column('rhythm', sa.String(length=100), nullable=True),
    sa.Column('conclusion', sa.Text(), nullable=True),
    sa.Column('read_by_user_id', _ID, nullable=True),
    sa.Column('read_at', _TS, nullable=True),
    sa.Column('uploaded_by_user_id', _ID, nullable=True),
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['diagnostic_order.id'], name=op.f('fk_ecg_recording_order_id_diagnostic_order')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_ecg_recording_patient_id_patient')),
    sa.ForeignKeyConstraint(['imaging_instance_id'], ['imaging_instance.id'], name=op.f('fk_ecg_recording_imaging_instance_id_imaging_instance')),
    sa.ForeignKeyConstraint(['read_by_user_id'], ['app_user.id'], name=op.f('fk_ecg_recording_read_by_user_id_app_user')),
    sa.ForeignKeyConstraint(['uploaded_by_user_id'], ['app_user.id'], name=op.f('fk_ecg_recording_uploaded_by_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ecg_recording'))
    )
    op.create_index(op.f('ix_ecg_recording_order_id'), 'ecg_recording', ['order_id'], unique=False)
    op.create_index(op.f('ix_ecg_recording_patient_id'), 'ecg_recording', ['patient_id'], unique=False)
    op.create_table('orthanc_forward',
    sa.Column('instance_id', _ID, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('orthanc_id', sa.String(length=64), nullable=True),
    sa.Column('orthanc_study_id', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('updated_at', _TS, nullable=False),
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['imaging_instance.id'], name=op.f('fk_orthanc_forward_instance_id_imaging_instance')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orthanc_forward')),
    sa.UniqueConstraint('instance_id', name=op.f('uq_orthanc_forward_instance_id'))
    )


def downgrade() -> None:
    op.drop_table('orthanc_forward')
    op.drop_index(op.f('ix_ecg_recording_patient_id'), table_name='ecg_recording')
    op.drop_index(op.f('ix_ecg_recording_order_id'), table_name='ecg_recording')
    op.drop_table('ecg_recording')
