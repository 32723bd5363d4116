"""A job's health and K without labels (issue #23): jobs.guard (restore|warn|off; null for jobs
made before the guard), jobs.k_range (set: K is estimated, "n_clusters": "auto"), jobs.k_selection
(the estimate: criterion, chosen, table), jobs.warnings and jobs.health (written with the results).

Self-contained (plain SQLAlchemy types, no imports from app/), like every migration here.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 11:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('guard', sa.String(), nullable=True))
        batch.add_column(sa.Column('k_range', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('k_selection', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('warnings', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('health', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('health')
        batch.drop_column('warnings')
        batch.drop_column('k_selection')
        batch.drop_column('k_range')
        batch.drop_column('guard')
