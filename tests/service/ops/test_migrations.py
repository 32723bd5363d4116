"""Alembic is the only way the schema is made: up to head and back to base, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from alembic import command
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

import deepclust.app.core.tables  # noqa: F401  (registers the tables)
from deepclust.app.core.migrate import alembic_config, downgrade, upgrade

from ..conftest import PostgresSchema


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.needs("postgresql"))])
def fresh_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'migrations.db'}"  # the directory does not exist yet
        return
    schema = PostgresSchema()
    yield schema.url
    schema.drop()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_head_then_downgrade_base(fresh_url):
    upgrade(fresh_url)
    assert tables(fresh_url) == set(SQLModel.metadata.tables) | {"alembic_version"}
    # The tables of app/tables.py and the migrations agree column for column.
    command.check(alembic_config(fresh_url))

    downgrade(fresh_url, "base")
    assert tables(fresh_url) == {"alembic_version"}

    upgrade(fresh_url)  # and the way up works again from base
    assert set(SQLModel.metadata.tables) <= tables(fresh_url)


def test_0004_splits_stored_weights_and_back(fresh_url):
    """A model stored with its weights in the models row comes out as two parts, and back whole."""
    tensors = {"model.encoder.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
               "model.centers": np.ones((2, 2), dtype=np.float32),
               "pretrained.encoder.weight": np.full((2, 3), 7, dtype=np.float32)}
    upgrade(fresh_url, "0002")
    engine = create_engine(fresh_url)
    created = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO jobs (id, tenant_id, dataset_id, method, n_clusters, params, seed, device, "
                          "status, attempts, cancel_requested, dispatch_pending, created_at) VALUES "
                          "('job_1', 't', 'ds', 'dec', 2, '{}', 0, 'cpu', 'succeeded', 1, false, false, :c)"),
                     {"c": created})
        conn.execute(text("INSERT INTO models (id, tenant_id, job_id, dataset_id, method, params, n_clusters, "
                          "sample_shape, weights, manifest, created_at) VALUES "
                          "('mdl_1', 't', 'job_1', 'ds', 'dec', '{}', 2, '[3]', :w, '{}', :c)"),
                     {"w": save_tensors(tensors), "c": created})
        conn.execute(text("INSERT INTO metrics (job_id, cluster_sizes, internal) VALUES "
                          "('job_1', '[6000, 7000]', '{\"silhouette\": 0.5}')"))
    upgrade(fresh_url)
    with engine.connect() as conn:
        parts = dict(conn.execute(text("SELECT part, data FROM model_weights WHERE model_id = 'mdl_1'")).all())
        sample = conn.execute(text("SELECT silhouette_sample_size FROM metrics")).scalar_one()
    assert sample == 10_000  # what the old code used: min(n, 10k)
    assert set(parts) == {"inference", "pretrained"}
    assert set(load_tensors(bytes(parts["inference"]))) == {"model.encoder.weight", "model.centers"}
    np.testing.assert_array_equal(load_tensors(bytes(parts["pretrained"]))["pretrained.encoder.weight"],
                                  tensors["pretrained.encoder.weight"])

    downgrade(fresh_url, "0002")
    with engine.connect() as conn:
        whole = load_tensors(bytes(conn.execute(text("SELECT weights FROM models")).scalar_one()))
    engine.dispose()
    assert set(whole) == set(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(whole[name], value)
