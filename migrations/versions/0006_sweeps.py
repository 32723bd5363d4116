"""Sweeps: the sweeps table, its grid of child jobs, and jobs.waits_for (a job held until another ends).

Self-contained (plain SQLAlchemy types, no imports from app/), like every migration here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 12:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'sweeps',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('tenant_id', sa.String(), nullable=False),
        sa.Column('dataset_id', sa.String(), nullable=False),
        sa.Column('name', sa.String(), nullable=True),
        sa.Column('method', sa.String(), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('n_clusters', sa.JSON(), nullable=False),
        sa.Column('seeds', sa.JSON(), nullable=False),
        sa.Column('selection', sa.String(), nullable=False),
        sa.Column('device', sa.String(), nullable=False),
        sa.Column('status', sa.String(), nullable=False),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('error', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('sweeps') as batch:
        batch.create_index('ix_sweeps_tenant_id', ['tenant_id'], unique=False)
        batch.create_index('ix_sweeps_dataset_id', ['dataset_id'], unique=False)
        batch.create_index('ix_sweeps_status', ['status'], unique=False)
    op.create_table(
        'sweep_jobs',
        sa.Column('sweep_id', sa.String(), nullable=False),
        sa.Column('job_id', sa.String(), nullable=False),
        sa.Column('n_clusters', sa.Integer(), nullable=False),
        sa.Column('seed', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sweep_id', 'job_id'),
    )
    with op.batch_alter_table('sweep_jobs') as batch:
        batch.create_index('ix_sweep_jobs_job_id', ['job_id'], unique=False)
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('waits_for', sa.String(), nullable=True))
        batch.create_index('ix_jobs_waits_for', ['waits_for'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_index('ix_jobs_waits_for')
        batch.drop_column('waits_for')
    op.drop_table('sweep_jobs')
    op.drop_table('sweeps')
