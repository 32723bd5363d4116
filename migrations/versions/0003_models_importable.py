"""models.job_id and models.dataset_id nullable: a model imported with POST /v1/models has neither.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.alter_column('job_id', existing_type=sa.String(), nullable=True)
        batch.alter_column('dataset_id', existing_type=sa.String(), nullable=True)


def downgrade() -> None:
    # Imported models cannot exist in the older schema.
    op.execute("DELETE FROM models WHERE job_id IS NULL OR dataset_id IS NULL")
    with op.batch_alter_table('models') as batch:
        batch.alter_column('job_id', existing_type=sa.String(), nullable=False)
        batch.alter_column('dataset_id', existing_type=sa.String(), nullable=False)
