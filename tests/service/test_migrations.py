"""Alembic is the only way the schema is made: up to head and back to base, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

import app.tables  # noqa: F401  (registers the tables)
from app.migrate import alembic_config, downgrade, upgrade

from .conftest import PostgresSchema


@pytest.fixture(params=["sqlite", "postgresql"])
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
