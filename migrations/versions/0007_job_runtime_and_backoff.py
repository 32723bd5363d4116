"""jobs.max_runtime_s (a job's own runtime limit) and jobs.not_before (a retried job's backoff).

Self-contained (plain SQLAlchemy types, no imports from app/), like every migration here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 10:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('max_runtime_s', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('not_before', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('not_before')
        batch.drop_column('max_runtime_s')
