"""Batch predictions (API 1.2): the predictions table, one row per model applied to a stored
dataset in the workers; its labels and probabilities are files of the artifact store.

Self-contained (plain SQLAlchemy types, no imports from app/), like every migration here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 13:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'predictions',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('tenant_id', sa.String(), nullable=False),
        sa.Column('model_id', sa.String(), nullable=False),
        sa.Column('dataset_id', sa.String(), nullable=False),
        sa.Column('status', sa.String(), nullable=False),
        sa.Column('progress', sa.JSON(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('worker', sa.String(), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('dispatch_pending', sa.Boolean(), nullable=False),
        sa.Column('not_before', sa.DateTime(timezone=True), nullable=True),
        sa.Column('error', sa.JSON(), nullable=True),
        sa.Column('n_samples', sa.Integer(), nullable=False),
        sa.Column('n_clusters', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('predictions') as batch:
        batch.create_index('ix_predictions_tenant_id', ['tenant_id'], unique=False)
        batch.create_index('ix_predictions_model_id', ['model_id'], unique=False)
        batch.create_index('ix_predictions_dataset_id', ['dataset_id'], unique=False)
        batch.create_index('ix_predictions_status_created_at', ['status', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_table('predictions')
