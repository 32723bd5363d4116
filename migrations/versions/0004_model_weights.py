"""model_weights: a model's safetensors bytes leave the models row, split into the inference part
and the pretrained autoencoder; metrics.silhouette_sample_size.

The models row is read on every predict and every GET of a model (ownership, input shape); with
the blob inside it, each of those read tens of MB, and on SQLite the columns stored after the blob
sat behind its overflow pages. Predict needs only the inference part, a fraction of the whole.

Self-contained (plain SQLAlchemy types, no imports from app/). The split is by tensor name, as the
library writes them: ``pretrained.*`` is the pretrained autoencoder, everything else is inference.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00
"""
import hashlib
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PRETRAINED_PREFIX = "pretrained."
# Before this revision the silhouette was computed on a seeded sample of at most this many points.
OLD_SILHOUETTE_MAX_SAMPLES = 10_000


def _split(blob: bytes) -> dict[str, bytes]:
    tensors = load_tensors(blob)
    pretrained = {k: v for k, v in tensors.items() if k.startswith(PRETRAINED_PREFIX)}
    inference = {k: v for k, v in tensors.items() if not k.startswith(PRETRAINED_PREFIX)}
    parts = {"inference": save_tensors(inference)}
    if pretrained:
        parts["pretrained"] = save_tensors(pretrained)
    return parts


def _merge(blobs: list[bytes]) -> bytes:
    tensors = {}
    for blob in blobs:
        tensors.update(load_tensors(blob))
    return save_tensors(tensors)


def upgrade() -> None:
    weights = op.create_table(
        'model_weights',
        sa.Column('model_id', sa.String(), nullable=False),
        sa.Column('part', sa.String(), nullable=False),
        sa.Column('sha256', sa.String(), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('model_id', 'part'),
    )
    conn = op.get_bind()
    models = sa.table('models', sa.column('id', sa.String()), sa.column('weights', sa.LargeBinary()))
    # One model at a time: a blob is tens of MB.
    for (model_id,) in conn.execute(sa.select(models.c.id)).all():
        blob = conn.execute(sa.select(models.c.weights).where(models.c.id == model_id)).scalar_one()
        for part, data in _split(blob).items():
            conn.execute(weights.insert().values(model_id=model_id, part=part, size_bytes=len(data),
                                                 sha256=hashlib.sha256(data).hexdigest(), data=data))
    with op.batch_alter_table('models') as batch:
        batch.drop_column('weights')

    with op.batch_alter_table('metrics') as batch:
        batch.add_column(sa.Column('silhouette_sample_size', sa.Integer(), nullable=True))
    metrics = sa.table('metrics', sa.column('job_id', sa.String()), sa.column('cluster_sizes', sa.JSON()),
                       sa.column('internal', sa.JSON()), sa.column('silhouette_sample_size', sa.Integer()))
    for job_id, sizes, internal in conn.execute(
            sa.select(metrics.c.job_id, metrics.c.cluster_sizes, metrics.c.internal)).all():
        if (internal or {}).get("silhouette") is not None:
            conn.execute(metrics.update().where(metrics.c.job_id == job_id).values(
                silhouette_sample_size=min(sum(sizes), OLD_SILHOUETTE_MAX_SAMPLES)))


def downgrade() -> None:
    with op.batch_alter_table('metrics') as batch:
        batch.drop_column('silhouette_sample_size')

    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('weights', sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    models = sa.table('models', sa.column('id', sa.String()), sa.column('weights', sa.LargeBinary()))
    weights = sa.table('model_weights', sa.column('model_id', sa.String()), sa.column('part', sa.String()),
                       sa.column('data', sa.LargeBinary()))
    for (model_id,) in conn.execute(sa.select(models.c.id)).all():
        blobs = conn.execute(sa.select(weights.c.data).where(weights.c.model_id == model_id)
                             .order_by(weights.c.part)).scalars().all()
        conn.execute(models.update().where(models.c.id == model_id).values(weights=_merge(blobs)))
    with op.batch_alter_table('models') as batch:
        batch.alter_column('weights', existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table('model_weights')
