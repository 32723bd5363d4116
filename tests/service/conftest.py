"""Fixtures of the service tests: a migrated database per backend (SQLite file, PostgreSQL schema),
an app on it, a client with a fresh tenant per test, and helpers to build upload files."""
from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.auth import create_key
from app.db import engine_for, new_session
from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings

PG_URL = os.environ.get("DEEPCLUST_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DEEPCLUST_TEST_REDIS", "redis://127.0.0.1:6379")
DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1
# The shared datasets sit beside the repository (../shared), never inside it.
USPS = Path(os.environ.get("DEEPCLUST_TEST_USPS", Path(__file__).resolve().parents[3] / "shared/datasets/usps.npz"))

# A small network and a few steps: a DEC job on a few hundred samples trains in seconds.
TINY_DEC = {"params": {"hidden_dims": [32, 32], "embedding_dim": 5, "maxiter": 60, "update_interval": 20,
                       "batch_size": 64, "kmeans_n_init": 3},
            "pretrain": {"epochs": 2, "batch_size": 64}}


class PostgresSchema:
    """A schema of its own in the `test` database, so parallel runs and sessions do not meet."""

    def __init__(self):
        self.name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        self.url = f"{PG_URL}?options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        engine_for(self.url).dispose()
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
            key, _ = create_key(session, f"test-{uuid.uuid4().hex[:6]}")
        return TestClient(app or self.shared_app, headers={"Authorization": f"Bearer {key}"})

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
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


def upload(client: TestClient, filename: str, content: bytes, **fields):
    files = {"file": (filename, content)}
    if "labels" in fields:
        files["labels"] = fields.pop("labels")
    return client.post("/v1/datasets", files=files, data=fields)


def usps_slice(n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(USPS) as data:
        return data["x"][:n], data["y"][:n]


def artifacts(data_dir: Path) -> list[str]:
    """Every file of the artifact store (staging included), relative to it."""
    root = data_dir / "artifacts"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
