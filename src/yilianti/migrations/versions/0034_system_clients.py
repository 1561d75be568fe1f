"""OAuth2 system clients of the FHIR API (SMART Backend Services): the registered clients, the client assertions
already used (replays refused), and the scope of an access token issued to a client (api_token.scope).

Revision ID: 0034
Revises: 0033
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'system_client',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('client_id', sa.String(64), nullable=False),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('institution_id', BigId, nullable=False),
        sa.Column('user_id', BigId, nullable=False),
        sa.Column('scope', sa.String(500), nullable=False),
        sa.Column('jwks', sa.Text(), nullable=True),
        sa.Column('secret_hash', sa.String(128), nullable=True),
        sa.Column('revoked_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['institution_id'], ['institution.id'],
                                name=op.f('fk_system_client_institution_id_institution')),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_system_client_user_id_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_system_client')),
        sa.UniqueConstraint('client_id', name=op.f('uq_system_client_client_id')),
    )
    op.create_index(op.f('ix_system_client_institution_id'), 'system_client', ['institution_id'])
    op.create_table(
        'client_assertion',
        sa.Column('key', sa.String(300), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_client_assertion')),
    )
    op.create_index(op.f('ix_client_assertion_expires_at'), 'client_assertion', ['expires_at'])
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('scope')
    op.drop_index(op.f('ix_client_assertion_expires_at'), 'client_assertion')
    op.drop_table('client_assertion')
    op.drop_index(op.f('ix_system_client_institution_id'), 'system_client')
    op.drop_table('system_client')
