"""Fixtures of the service tests: a migrated database per backend (SQLite file, PostgreSQL schema),
an app on it, a client with a fresh tenant per test, and helpers to build upload files."""
from __future__ import annotations

import io
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from deepclust.app.tenancy.auth import create_key
from deepclust.app.core.db import dispose_engines, engine_for, new_session
from deepclust.app.core.tables import Job
from deepclust.app.core.migrate import upgrade
from deepclust.app.core.settings import Settings
from deepclust.app.main import create_app

PG_URL = os.environ.get("DEEPCLUST_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DEEPCLUST_TEST_REDIS", "redis://127.0.0.1:6379")
DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1

# A small network and a few steps: a DEC job on a few hundred samples trains in seconds.
TINY_DEC = {"params": {"hidden_dims": [32, 32], "embedding_dim": 5, "maxiter": 60, "update_interval": 20,
                       "batch_size": 64, "kmeans_n_init": 3},
            "pretrain": {"epochs": 2, "batch_size": 64}}


class PostgresSchema:
    """A schema of its own in the `test` database, so parallel runs and sessions do not meet."""

    def __init__(self):
        self.name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # outlives a restart
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        self.url = f"{PG_URL}?options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        dispose_engines(self.url)
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self._admin.dispose()


@dataclass
class Backend:
    name: str
    settings: Settings
    shared_app: object = None

    def app(self, **overrides):
        return create_app(self.settings.model_copy(update=overrides))

    def client(self, app=None) -> TestClient:
        """A client of a fresh tenant: tests see only what they made themselves."""
        with new_session(engine_for(self.settings.database_url)) as session:
            key, _ = create_key(session, f"test-{uuid.uuid4().hex[:16]}")
        return TestClient(app or self.shared_app, headers={"Authorization": f"Bearer {key}"})

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir


# -- PostgreSQL and Redis: checked once, before any test runs ---------------------------------------

def _answers(url: str, default_port: int) -> str | None:
    """None when something listens at the URL's host and port, else why not."""
    parsed = urlsplit(url.replace("postgresql+psycopg2", "postgresql"))
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


SERVICES = {"postgresql": ("PostgreSQL", PG_URL, 5432, "DEEPCLUST_TEST_POSTGRES",
                           "docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test postgres:16"),
            "redis": ("Redis", REDIS_URL, 6379, "DEEPCLUST_TEST_REDIS", "docker run -d -p 6379:6379 redis:7")}


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(*services): the test needs 'postgresql' and/or 'redis' running")
    config.addinivalue_line("markers", "faults: restarts the machine's PostgreSQL or Redis (tests/service/worker/test_faults.py)")


def pytest_collection_finish(session):
    """Fail in seconds, saying how to start them, when the selected tests need PostgreSQL or Redis
    and they are not there (instead of a connection traceback in the middle of the run)."""
    needed = sorted({name for item in session.items for mark in item.iter_markers("needs") for name in mark.args})
    down = [(SERVICES[name], why) for name in needed if (why := _answers(SERVICES[name][1], SERVICES[name][2]))]
    if not down:
        return
    lines = [f"The selected tests need {' and '.join(SERVICES[n][0] for n in needed)}; not answering:"]
    for (label, url, _, env, start), why in down:
        lines.append(f"  {label} at {url} ({why}); start one with:  {start}")
        lines.append(f"    (or your distribution's package, or point {env} at another)")
    lines.append("`.ci/run` starts both on a machine with the packages installed. To run only the tests that "
                 "need neither: pytest -m 'not needs'")
    pytest.exit("\n".join(lines), returncode=4)


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.needs("postgresql"))])
def backend(request, tmp_path_factory) -> Backend:
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'api.db'}"
    else:
        schema = PostgresSchema()
        request.addfinalizer(schema.drop)
        url = schema.url
    upgrade(url)
    settings = Settings(data_dir=data_dir, database_url=url, auth="enabled", dispatcher="local",
                        reaper_interval_seconds=0, progress_interval_seconds=0.05)
    return Backend(request.param, settings, create_app(settings))


@pytest.fixture
def api(backend) -> TestClient:
    with backend.client() as client:
        yield client


# -- files to upload -------------------------------------------------------------------------------

def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def blobs(n: int = 120, d: int = 8, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k well-separated Gaussian blobs."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centers = rng.normal(0, 6, size=(k, d))
    return (centers[y] + rng.normal(0, 0.5, size=(n, d))).astype(np.float32), y


def set_job(backend, job_id: str, **values) -> None:
    """Change columns of a job row directly, to put it in a state a test needs."""
    with new_session(engine_for(backend.settings.database_url)) as session:
        job = session.get(Job, job_id)
        for name, value in values.items():
            setattr(job, name, value)
        session.commit()


def upload(client: TestClient, filename: str, content: bytes, **fields):
    files = {"file": (filename, content)}
    if "labels" in fields:
        files["labels"] = fields.pop("labels")
    return client.post("/v1/datasets", files=files, data=fields)


def digits(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1797 labelled samples, 64 features in [0, 1])."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X[:n] / 16).astype(np.float32), y[:n]


def artifacts(data_dir: Path) -> list[str]:
    """Every file of the artifact store (staging included), relative to it."""
    root = data_dir / "artifacts"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- a real `deepclust serve` with auth on, shared by the client and CLI tests --------------------

@dataclass
class Served:
    url: str
    key: str
    server: object  # processes.Program
    tmp: Path


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Served:
    import subprocess

    from .processes import DEEPCLUST, clean_env, start_server

    tmp = tmp_path_factory.mktemp("served")
    env = clean_env(auth="enabled", progress_interval_seconds=0.2, heartbeat_seconds=1)
    made = subprocess.run([DEEPCLUST, "keys", "create", "--name", "tester"], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    server, http = start_server(tmp, env)
    http.close()
    try:
        yield Served(str(http.base_url).rstrip("/"), made.stdout.strip().splitlines()[-1], server, tmp)
    finally:
        server.stop()
