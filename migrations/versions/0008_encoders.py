"""Pretrained image encoders: the encoders table, jobs.encoder_id (a job on an encoder's
embeddings) and models.encoder (the preprocessing of a model that predicts from images through one).

Self-contained (plain SQLAlchemy types, no imports from app/), like every migration here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:45:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'encoders',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('tenant_id', sa.String(), nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('input_shape', sa.JSON(), nullable=False),
        sa.Column('output_dim', sa.Integer(), nullable=False),
        sa.Column('color', sa.String(), nullable=False),
        sa.Column('mean', sa.JSON(), nullable=True),
        sa.Column('std', sa.JSON(), nullable=True),
        sa.Column('input_name', sa.String(), nullable=False),
        sa.Column('output_name', sa.String(), nullable=False),
        sa.Column('sha256', sa.String(), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('file_key', sa.String(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('encoders') as batch:
        batch.create_index('ix_encoders_tenant_id', ['tenant_id'], unique=False)
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('encoder_id', sa.String(), nullable=True))
        batch.create_index('ix_jobs_encoder_id', ['encoder_id'], unique=False)
    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('encoder', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.drop_column('encoder')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_index('ix_jobs_encoder_id')
        batch.drop_column('encoder_id')
    op.drop_table('encoders')
