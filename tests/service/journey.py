"""The user journey of the issue, against a running service: upload digits with labels, train DEC,
read labels, centroids and metrics, predict training rows and get their stored labels back."""
from __future__ import annotations

import os
import signal

import httpx
import numpy as np
from sqlalchemy import create_engine, text

from .processes import wait_for_job, wait_until

K = 10
DEC_JOB = {"method": "dec", "n_clusters": K, "seed": 0,
           "params": {"hidden_dims": [32, 32], "embedding_dim": 5, "maxiter": 150, "update_interval": 30,
                      "batch_size": 64, "kmeans_n_init": 3},
           "pretrain": {"epochs": 3, "batch_size": 64}}


def train_dec(client: httpx.Client, dataset_id: str, **changes) -> dict:
    r = client.post("/v1/jobs", json={"dataset_id": dataset_id, **DEC_JOB, **changes})
    assert r.status_code == 202, r.text
    return r.json()


def check_results(client: httpx.Client, job: dict, X: np.ndarray, y: np.ndarray, predict_file: bool) -> None:
    n = len(X)
    labels = client.get(f"/v1/jobs/{job['id']}/labels", params={"limit": n}).json()
    assert labels["total"] == n and len(labels["items"]) == n
    stored = np.array([item["label"] for item in labels["items"]])
    assert stored.min() >= 0 and stored.max() < K

    centroids = client.get(f"/v1/jobs/{job['id']}/centroids").json()
    assert np.asarray(centroids["centroids"]).shape == (K, DEC_JOB["params"]["embedding_dim"])

    metrics = client.get(f"/v1/jobs/{job['id']}/metrics").json()
    chance = np.bincount(y).max() / n  # ACC of putting everything in one cluster
    assert metrics["external"]["acc"] > chance, (metrics, chance)
    assert sum(metrics["cluster_sizes"]) == n

    rows = X[:50]
    url = f"/v1/models/{job['model_id']}/predict"
    if predict_file:
        buffer = __import__("io").BytesIO()
        np.save(buffer, rows)
        r = client.post(url, files={"file": ("rows.npy", buffer.getvalue())})
    else:
        r = client.post(url, json={"instances": rows.tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == stored[:50].tolist()


def run_journey(client: httpx.Client, files: dict, X: np.ndarray, y: np.ndarray, predict_file: bool) -> dict:
    r = client.post("/v1/datasets", files=files, data={"name": "digits slice"})
    assert r.status_code == 201, r.text
    dataset = r.json()
    assert (dataset["n_samples"], dataset["n_features"], dataset["n_classes"]) == (len(X), X.shape[1], 10)
    job = train_dec(client, dataset["id"])
    job = wait_for_job(client, job["id"], {"succeeded", "failed", "cancelled"})
    assert job["status"] == "succeeded", job
    check_results(client, job, X, y, predict_file)
    return job


# Hundreds of short epochs: whatever the machine's speed, a kill lands inside pretraining.
LONG_PRETRAIN = {"epochs": 400, "batch_size": 16}


def job_owner(database_url: str, job_id: str) -> str:
    """The ``host:pid`` of the process running the job, as the service recorded it."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        owner = conn.execute(text("SELECT worker FROM jobs WHERE id = :id"), {"id": job_id}).scalar_one()
    engine.dispose()
    return owner


def kill_mid_pretraining(client: httpx.Client, dataset_id: str, database_url: str) -> dict:
    """Start a job, SIGKILL the process running it (a job child or a Celery pool process, never the
    server) once it has checkpointed a few epochs, and return the job once it has ended, which it
    must have done through a second attempt."""
    job = train_dec(client, dataset_id, pretrain=LONG_PRETRAIN)

    def checkpointed_in_pretraining():
        state = client.get(f"/v1/jobs/{job['id']}").json()
        return (state["status"] == "running" and state["phase"] == "pretrain"
                and (state["progress"]["epoch"] or 0) >= 2)

    wait_until(checkpointed_in_pretraining, 300, "the job to run a few pretraining epochs")
    os.kill(int(job_owner(database_url, job["id"]).rsplit(":", 1)[1]), signal.SIGKILL)
    done = wait_for_job(client, job["id"], {"succeeded", "failed", "cancelled"})
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    pretrain = [r["epoch"] for r in client.get(f"/v1/jobs/{job['id']}/history").json() if r["phase"] == "pretrain"]
    assert pretrain == list(range(LONG_PRETRAIN["epochs"]))  # resumed, not repeated
    return done
