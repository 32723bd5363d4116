"""The `deepclust` commands a person types: keys create (a working key, shown once), migrate."""
from __future__ import annotations

import subprocess

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from app.main import create_app
from app.settings import Settings

from .processes import DEEPCLUST, clean_env


def run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = clean_env(data_dir=tmp_path / "data")
    return subprocess.run([DEEPCLUST, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_keys_create_prints_a_key_that_opens_the_api(tmp_path):
    made = run(tmp_path, "keys", "create", "--name", "alice")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    tenant = made.stdout.split("for tenant ")[1].split()[0]
    second = run(tmp_path, "keys", "create", "--name", "alice-laptop", "--tenant", tenant)
    assert second.returncode == 0 and tenant in second.stdout
    assert run(tmp_path, "keys", "create", "--name", "x", "--tenant", "tn_nope").returncode == 1

    settings = Settings(data_dir=tmp_path / "data", auth="enabled", reaper_interval_seconds=0)
    with TestClient(create_app(settings)) as api:
        assert api.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert api.get("/v1/datasets").status_code == 401
    engine = create_engine(settings.database_url)
    assert "api_keys" in inspect(engine).get_table_names()
    engine.dispose()
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("deepclust.db*"))
    assert key.encode() not in stored  # only its hash is kept


def test_migrate_up_and_down(tmp_path):
    assert run(tmp_path, "migrate").returncode == 0
    down = run(tmp_path, "migrate", "--downgrade", "base")
    assert down.returncode == 0 and "at base" in down.stdout
