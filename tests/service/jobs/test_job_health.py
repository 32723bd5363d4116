"""API 1.2 "Health of a result, and K without labels": n_clusters "auto" end to end (job,
k_selection, its plot, predict) and the guard's warnings on a job, through the real worker."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import make_blobs

from deepclust.worker.run import run_job

from ..conftest import TINY_DEC, npy_bytes, upload
from ..http.test_bad_input import assert_error

K_TRUE = 5


def dataset_of(api, X) -> str:
    r = upload(api, "x.npy", npy_bytes(X.astype(np.float32)))
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def auto_job(backend):
    X, _ = make_blobs(n_samples=[120, 60, 90, 50, 80], n_features=8, cluster_std=1.0, random_state=0)
    with backend.client() as api:
        body = {"dataset_id": dataset_of(api, X), "method": "dec", "n_clusters": "auto", "k_range": [2, 8],
                **TINY_DEC}
        created = api.post("/v1/jobs", json=body)
        assert created.status_code == 202, created.text
        queued = created.json()
        assert queued["n_clusters"] is None and queued["k_range"] == [2, 8] and queued["k_selection"] is None
        assert queued["guard"] == "restore" and queued["warnings"] == [] and queued["health"] is None
        assert run_job(queued["id"], backend.settings) == "succeeded"
        yield api, api.get(f"/v1/jobs/{queued['id']}").json(), X


def test_auto_k_end_to_end(auto_job):
    api, job, X = auto_job
    assert job["status"] == "succeeded" and job["n_clusters"] == K_TRUE
    selection = job["k_selection"]
    assert selection["criterion"] == "stadion" and selection["chosen"] == K_TRUE
    assert [row["n_clusters"] for row in selection["table"]] == list(range(2, 9))
    assert all("stadion" in row and "stability" in row for row in selection["table"])
    (estimated,) = [w for w in job["warnings"] if w["code"] == "k_estimated"]
    assert estimated["details"]["criterion"] == "stadion" and estimated["details"]["chosen"] == K_TRUE
    assert job["health"]["nonempty_clusters"] == K_TRUE and job["health"]["guard"] is None
    assert len(api.get(f"/v1/jobs/{job['id']}/metrics").json()["cluster_sizes"]) == K_TRUE

    plot = api.get(f"/v1/jobs/{job['id']}/plots/k_selection.png")
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(plot.content)).width > 100
    assert api.get(f"/v1/jobs/{job['id']}/plots/k_selection.json").json() == selection

    predicted = api.post(f"/v1/models/{job['model_id']}/predict", json={"instances": X[:10].tolist()})
    assert predicted.status_code == 200, predicted.text
    stored = [i["label"] for i in api.get(f"/v1/jobs/{job['id']}/labels", params={"limit": 10}).json()["items"]]
    assert predicted.json()["labels"] == stored
    assert np.asarray(predicted.json()["probabilities"]).shape == (10, K_TRUE)


def test_k_estimation_is_refused_where_it_cannot_work(auto_job):
    api, job, _ = auto_job
    ds = job["dataset_id"]
    assert_error(api.post("/v1/jobs", json={"dataset_id": ds, "method": "dec", "n_clusters": 4, "k_range": [2, 5]}),
                 422, "invalid_n_clusters")
    assert_error(api.post("/v1/jobs", json={"dataset_id": ds, "method": "dec", "n_clusters": "auto",
                                            "k_range": [6, 3]}), 422, "invalid_n_clusters")
    assert api.post("/v1/jobs", json={"dataset_id": ds, "method": "dec", "n_clusters": "many"}).status_code == 422
    assert api.post("/v1/jobs", json={"dataset_id": ds, "method": "dec", "n_clusters": 4,
                                      "guard": "sometimes"}).status_code == 422


COLLAPSE = {"params": {"hidden_dims": [32, 32], "embedding_dim": 4, "maxiter": 300, "update_interval": 20,
                       "batch_size": 64, "kmeans_n_init": 5, "tol": 0.0, "lr": 2.0},
            "pretrain": {"epochs": 10, "batch_size": 64}, "seed": 3}


@pytest.mark.parametrize("guard", ["restore", "warn"])
def test_the_guard_on_a_job_that_collapses(backend, guard):
    X, _ = make_blobs(n_samples=600, n_features=20, centers=4, cluster_std=1.0, random_state=0)
    X = (X - X.mean(0)) / X.std(0)
    with backend.client() as api:
        body = {"dataset_id": dataset_of(api, X), "method": "dec", "n_clusters": 4, "guard": guard, **COLLAPSE}
        job = api.post("/v1/jobs", json=body).json()
        assert run_job(job["id"], backend.settings) == "succeeded"  # a job with warnings still succeeds
        job = api.get(f"/v1/jobs/{job['id']}").json()
        codes = [w["code"] for w in job["warnings"]]
        sizes = api.get(f"/v1/jobs/{job['id']}/metrics").json()["cluster_sizes"]
        if guard == "restore":
            assert codes == ["restored"] and job["health"]["guard"] == "restored"
            assert job["warnings"][0]["details"]["phase"] == "finetune"
            assert job["health"]["restored_epoch"] == job["warnings"][0]["details"]["epoch"]
            assert job["health"]["nonempty_clusters"] == 4 and min(sizes) > 0
        else:
            assert "clusters_emptied" in codes and job["health"]["guard"] == "warned"
            assert job["health"]["nonempty_clusters"] < 4 and min(sizes) == 0
        assert_error(api.get(f"/v1/jobs/{job['id']}/plots/k_selection.png"), 409, "no_k_selection")
        log = api.get(f"/v1/jobs/{job['id']}/logs").text
        assert codes[0] in log
