"""The service half of the method contract: every registered method, with its tiny preset, goes
through the whole journey (upload, job, worker, results, predict) — a new method is covered by
being registered. The library half is tests/models/test_contract.py."""
from __future__ import annotations

import io

import numpy as np
import pytest

from deepclust.models import list_methods, tiny_preset
from deepclust.worker.run import run_job

from ..conftest import blobs, npy_bytes, upload

K = 3


def _dataset(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Separable data of the kind a method takes: blobs, or bright squares at K places in 16×16 images."""
    if kind == "features":
        return blobs(60, 8, K)
    rng = np.random.default_rng(0)
    y = np.arange(48) % K
    X = rng.uniform(0, 40, size=(48, 1, 16, 16))
    for i, label in enumerate(y):
        X[i, 0, 2 + 4 * label:7 + 4 * label, 3:12] += 200
    return X.astype(np.uint8), y


def _request(method: str, kind: str) -> dict:
    """The preset split as API.md asks: pretraining settings in the `pretrain` block."""
    preset = tiny_preset(method)
    pretrain = {k.removeprefix("pretrain_"): v for k, v in preset.items() if k.startswith("pretrain_")}
    params = {k: v for k, v in preset.items() if not k.startswith("pretrain_")}
    return {"method": method, "n_clusters": K, "params": params, "seed": 0, **({"pretrain": pretrain} if pretrain else {})}


CASES = [(m.name, kind) for m in list_methods() for kind in m.input_kinds]


# One database is enough here: the journey's database behaviour is covered on both elsewhere.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "kind"), CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_every_method_completes_the_service_journey(backend, method, kind):
    X, y = _dataset(kind)
    with backend.client() as api:
        dataset = upload(api, "data.npy", npy_bytes(X), labels=("y.txt", "\n".join(map(str, y)).encode()))
        assert dataset.status_code == 201, dataset.text
        created = api.post("/v1/jobs", json={"dataset_id": dataset.json()["id"], **_request(method, kind)})
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        assert run_job(job_id, backend.settings) == "succeeded"

        job = api.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded" and job["progress"]["fraction"] == 1.0
        history = api.get(f"/v1/jobs/{job_id}/history").json()
        assert history and all(np.isfinite(r["loss"]) for r in history if r["loss"] is not None)
        # Every method that produces labels during training gets scored against the dataset's labels.
        assert any("acc" in r for r in history), f"{method}: no acc/nmi in the history"

        labels = api.get(f"/v1/jobs/{job_id}/labels", params={"format": "npy"}).content
        stored = np.load(io.BytesIO(labels))
        assert stored.shape == (len(X),) and set(stored) <= set(range(K))
        metrics = api.get(f"/v1/jobs/{job_id}/metrics").json()
        assert sum(metrics["cluster_sizes"]) == len(X) and set(metrics["external"]) >= {"acc", "nmi", "ari"}
        centroids = api.get(f"/v1/jobs/{job_id}/centroids").json()
        assert len(centroids["centroids"]) == K and all(np.isfinite(centroids["centroids"]).all(axis=1))

        # The stored model predicts the training rows as the job labelled them.
        rows = X[:5].reshape(5, -1).tolist() if kind == "features" else X[:5].tolist()
        predicted = api.post(f"/v1/models/{job['model_id']}/predict", json={"instances": rows})
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["labels"] == stored[:5].tolist()

        # Export -> import -> predict round-trips: the download imports and predicts the same.
        bundle = api.get(f"/v1/models/{job['model_id']}/download")
        assert bundle.status_code == 200, bundle.text
        imported = api.post("/v1/models", files={"file": ("model.zip", bundle.content, "application/zip")})
        assert imported.status_code == 201, imported.text
        again = api.post(f"/v1/models/{imported.json()['id']}/predict", json={"instances": rows})
        assert again.status_code == 200, again.text
        assert again.json()["labels"] == stored[:5].tolist()
        assert np.allclose(again.json()["probabilities"], predicted.json()["probabilities"], atol=1e-5)


def test_an_image_size_a_network_cannot_take_is_a_422_naming_the_sizes_it_can(api):
    X = np.random.default_rng(0).integers(0, 255, size=(20, 1, 15, 15), dtype=np.uint8)
    dataset = upload(api, "odd.npy", npy_bytes(X)).json()
    answer = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "decs", "n_clusters": 2})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unsupported_input_shape"
    assert "15×15" in error["message"] and "16, 24, 28, 32" in error["message"]
    assert api.get("/v1/jobs", params={"dataset_id": dataset["id"]}).json()["total"] == 0  # nothing queued


def test_an_image_method_refuses_a_feature_matrix_saying_why(api):
    dataset = upload(api, "x.npy", npy_bytes(blobs(30, 8, K)[0])).json()
    answer = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "ae_dac", "n_clusters": K})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "method_input_kind"
    assert "image" in answer.json()["error"]["message"]
