"""The user journey of the issue, against a running service: upload USPS with labels, train DEC,
read labels, centroids and metrics, predict training rows and get their stored labels back."""
from __future__ import annotations

import httpx
import numpy as np

from .processes import wait_for_job

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
    r = client.post("/v1/datasets", files=files, data={"name": "usps slice"})
    assert r.status_code == 201, r.text
    dataset = r.json()
    assert (dataset["n_samples"], dataset["n_features"], dataset["n_classes"]) == (len(X), 256, 10)
    job = train_dec(client, dataset["id"])
    job = wait_for_job(client, job["id"], {"succeeded", "failed", "cancelled"})
    assert job["status"] == "succeeded", job
    check_results(client, job, X, y, predict_file)
    return job
