"""The `deepclust` commands an operator types: keys create (a working key, shown once), migrate, serve."""
from __future__ import annotations

import socket
import subprocess

import httpx

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from deepclust.app.core.settings import Settings
from deepclust.app.main import create_app

from ..processes import DEEPCLUST, Program, clean_env, free_port, wait_until


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


def test_serve_prints_its_banner_once_it_answers(tmp_path):
    port = free_port()
    server = Program([DEEPCLUST, "serve", "--port", str(port)], clean_env(), tmp_path, tmp_path / "serve.log")
    try:
        wait_until(lambda: "deepclust API at" in server.output() or server.process.poll() is not None, 180,
                   "the banner")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200  # no retry needed
    finally:
        server.stop()


def test_serve_on_a_busy_port_says_so_and_prints_no_banner(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(tmp_path, "serve", "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert "deepclust API at" not in result.stdout + result.stderr
