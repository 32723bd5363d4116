"""Batch predictions end to end on both dispatchers, over HTTP: the embedded default (`deepclust
serve`, SQLite, the local runner's child processes) and the production shape (PostgreSQL, Redis,
`deepclust serve` with the Celery dispatcher and a real `deepclust worker`). On each, a running
prediction is cancelled within a batch, and one whose worker process is killed mid-run is retried
(the local runner at once, the API's reaper once the heartbeat is stale) and resumes after the rows
it had stored, to the synchronous predict's labels.

One row per batch (DEEPCLUST_PREDICT_BATCH_SIZE=1) over tens of thousands of rows keeps a
prediction running for seconds, long enough to be cancelled or killed mid-way on any machine."""
from __future__ import annotations

import io
import os
import signal

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from ..conftest import TINY_DEC, blobs
from ..processes import celery_stack, clean_env, start_server, wait_until

N_NEW = 60_000
SLOW = {"progress_interval_seconds": 0.2, "heartbeat_seconds": 1, "checkpoint_interval_seconds": 0.2,
        "predict_batch_size": 1}
FINISHED = {"succeeded", "failed", "cancelled"}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def prepare(client) -> tuple[str, str, np.ndarray]:
    """A small DEC model on 8-feature blobs and a large dataset of new rows for it."""
    X, _ = blobs(300, 8, 3)
    train = client.post("/v1/datasets", files={"file": ("train.npy", npy(X))}).json()["id"]
    r = client.post("/v1/jobs", json={"dataset_id": train, "method": "dec", "n_clusters": 3, "seed": 0, **TINY_DEC})
    assert r.status_code == 202, r.text
    job = wait_until(lambda: (j := client.get(f"/v1/jobs/{r.json()['id']}").json())["status"] in FINISHED and j,
                     600, "the DEC job to end")
    assert job["status"] == "succeeded", job
    new = np.random.default_rng(3).normal(0, 4, (N_NEW, 8)).astype(np.float32)
    dataset = client.post("/v1/datasets", files={"file": ("new.npy", npy(new))}).json()["id"]
    return job["model_id"], dataset, new


def start(client, model: str, dataset: str) -> dict:
    r = client.post("/v1/predictions", json={"model_id": model, "dataset_id": dataset})
    assert r.status_code == 202, r.text
    return r.json()


def running_with(client, prediction_id: str, rows: int):
    def check():
        state = client.get(f"/v1/predictions/{prediction_id}").json()
        assert state["status"] not in FINISHED, state  # it must still be running when we act
        return state if state["status"] == "running" and (state["progress"] or {}).get("done", 0) >= rows else None

    return wait_until(check, 300, f"prediction {prediction_id} to predict {rows} rows")


def wait_end(client, prediction_id: str) -> dict:
    return wait_until(lambda: (p := client.get(f"/v1/predictions/{prediction_id}").json())["status"] in FINISHED
                      and p, 600, f"prediction {prediction_id} to end", interval=0.5)


def owner_pid(database_url: str, prediction_id: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        worker = conn.execute(text("SELECT worker FROM predictions WHERE id = :id"), {"id": prediction_id}).scalar_one()
    engine.dispose()
    return int(worker.rsplit(":", 1)[1])


def cancel_mid_run(client, model: str, dataset: str, data_dir) -> None:
    prediction = start(client, model, dataset)
    running_with(client, prediction["id"], 100)
    r = client.post(f"/v1/predictions/{prediction['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "running", r.text
    done = wait_end(client, prediction["id"])
    assert done["status"] == "cancelled" and done["progress"]["done"] < N_NEW, done
    assert client.get(f"/v1/predictions/{prediction['id']}/labels").status_code == 409
    assert not (data_dir / "artifacts" / "predictions" / prediction["id"]).exists()  # no partial result kept
    assert client.delete(f"/v1/predictions/{prediction['id']}").status_code == 204


def kill_mid_run(client, model: str, dataset: str, X: np.ndarray, data_dir, database_url: str) -> str:
    """SIGKILL the process running a prediction once it has stored parts; it must end succeeded
    through a second attempt that resumed after them, with the synchronous predict's labels."""
    prediction = start(client, model, dataset)
    parts = data_dir / "artifacts" / "predictions" / prediction["id"] / "parts"
    running_with(client, prediction["id"], 1000)
    wait_until(lambda: parts.exists() and any(parts.iterdir()), 120, "a stored part")
    os.kill(owner_pid(database_url, prediction["id"]), signal.SIGKILL)
    done = wait_end(client, prediction["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    got = np.load(io.BytesIO(client.get(f"/v1/predictions/{prediction['id']}/labels",
                                        params={"format": "npy"}).content))
    expected = client.post(f"/v1/models/{model}/predict", files={"file": ("new.npy", npy(X))}).json()["labels"]
    assert got.tolist() == expected
    assert not parts.exists()  # the parts went once the arrays were published
    return prediction["id"]


# -- the embedded default: local runner, SQLite ----------------------------------------------------

@pytest.fixture(scope="module")
def local(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predictions-embedded")
    server, client = start_server(tmp, clean_env(**SLOW))
    try:
        yield server, client, tmp, prepare(client)
    finally:
        client.close()
        server.stop()


def test_local_runner_cancels_a_running_prediction(local):
    _, client, tmp, (model, dataset, _) = local
    cancel_mid_run(client, model, dataset, tmp / "data")


def test_local_runner_resumes_a_killed_prediction(local):
    server, client, tmp, (model, dataset, X) = local
    prediction_id = kill_mid_run(client, model, dataset, X, tmp / "data", f"sqlite:///{tmp / 'data' / 'deepclust.db'}")
    assert f"prediction {prediction_id}: resuming after the" in server.output()


# -- the production shape: Celery, Redis, PostgreSQL -----------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with celery_stack(tmp_path_factory.mktemp("predictions-celery"), stale_after_seconds=5, reaper_interval_seconds=1,
                      retry_backoff_seconds=1, **SLOW) as running:
        yield running.client, running.worker, running.schema, running.tmp, prepare(running.client)


@pytest.mark.needs("postgresql", "redis")
def test_celery_worker_cancels_a_running_prediction(stack):
    client, worker, _, tmp, (model, dataset, _) = stack
    cancel_mid_run(client, model, dataset, tmp / "data")
    assert "deepclust.run_prediction" in worker.output()  # the Celery worker ran it


@pytest.mark.needs("postgresql", "redis")
def test_celery_worker_killed_mid_prediction_is_reaped_and_resumed(stack):
    client, worker, schema, tmp, (model, dataset, X) = stack
    prediction_id = kill_mid_run(client, model, dataset, X, tmp / "data", schema.url)
    assert f"prediction {prediction_id}: resuming after the" in worker.output()
