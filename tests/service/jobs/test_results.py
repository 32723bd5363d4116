"""A job trained by the real worker (run_job, in this process) and everything read from it."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from sqlalchemy import event
from sqlmodel import select

from deepclust.app.core import results
from deepclust.app.core.db import engine_for, new_session
from deepclust.app.core.tables import ModelWeights
from deepclust.models import DeepClusterer
from deepclust.worker.run import run_job

from ..conftest import TINY_DEC, blobs, npy_bytes, upload
from ..http.test_bad_input import assert_error

N, D, K = 90, 8, 3


@pytest.fixture(scope="module")
def trained(backend):
    X, y = blobs(N, D, K)
    with backend.client() as api:
        dataset = upload(api, "blobs.npy", npy_bytes(X), labels=("y.txt", "\n".join(map(str, y)).encode())).json()
        job = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "dec", "n_clusters": K,
                                         **TINY_DEC}).json()
        assert run_job(job["id"], backend.settings) == "succeeded"
        yield api, api.get(f"/v1/jobs/{job['id']}").json(), X, y


def test_succeeded_job_resource(trained):
    _, job, _, _ = trained
    assert job["status"] == "succeeded" and job["phase"] == "finalize" and job["attempts"] == 1
    assert job["progress"]["fraction"] == 1.0 and job["model_id"].startswith("mdl_")
    assert job["progress"]["epoch"] == job["progress"]["epochs"] == 1 and job["progress"]["loss"] > 0
    assert job["started_at"] <= job["finished_at"] and job["error"] is None


def test_history_has_every_loss_term_and_evaluation(trained):
    api, job, _, _ = trained
    rows = api.get(f"/v1/jobs/{job['id']}/history").json()
    pretrain = [r for r in rows if r["phase"] == "pretrain"]
    finetune = [r for r in rows if r["phase"] == "finetune"]
    assert [r["epoch"] for r in pretrain] == [0, 1]
    assert all(r["loss"] == r["reconstruction"] for r in pretrain)
    assert finetune and all({"loss", "kl", "label_change", "acc", "nmi"} <= set(r) for r in finetune)
    assert [r["epoch"] for r in finetune] == list(range(len(finetune)))


def test_labels_in_json_pages_csv_and_npy(trained):
    api, job, _, _ = trained
    url = f"/v1/jobs/{job['id']}/labels"
    full = api.get(url, params={"limit": N}).json()
    assert full["total"] == N and full["offset"] == 0
    assert [item["index"] for item in full["items"]] == list(range(N))
    labels = [item["label"] for item in full["items"]]
    assert set(labels) <= set(range(K)) and all(0 < item["confidence"] <= 1 for item in full["items"])

    page = api.get(url, params={"offset": 10, "limit": 5}).json()
    assert page["offset"] == 10 and page["items"] == full["items"][10:15]

    csv = api.get(url, params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().split("\n")
    assert lines[0] == "index,label,confidence" and len(lines) == N + 1
    assert [int(line.split(",")[1]) for line in lines[1:]] == labels

    npy = api.get(url, params={"format": "npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.content), allow_pickle=False), labels)
    assert_error(api.get(url, params={"format": "xml"}), 400, "malformed_request")


def test_centroids_and_metrics(trained):
    api, job, _, y = trained
    centroids = api.get(f"/v1/jobs/{job['id']}/centroids").json()
    assert centroids["space"] == "embedding" and centroids["dim"] == 5
    assert np.asarray(centroids["centroids"]).shape == (K, 5)

    metrics = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert sum(metrics["cluster_sizes"]) == N and len(metrics["cluster_sizes"]) == K
    assert set(metrics["internal"]) == {"silhouette", "calinski_harabasz", "davies_bouldin"}
    assert set(metrics["external"]) == {"acc", "nmi", "ari"}
    assert metrics["external"]["acc"] > np.bincount(y).max() / N  # better than one big cluster
    assert metrics["silhouette_sample_size"] == N  # fewer points than the 2k sample: all of them


def test_models_list_and_get(trained):
    api, job, _, _ = trained
    model = api.get(f"/v1/models/{job['model_id']}").json()
    assert (model["job_id"], model["dataset_id"], model["method"]) == (job["id"], job["dataset_id"], "dec")
    assert model["sample_shape"] == [D] and model["n_clusters"] == K
    assert model["metrics"] == api.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert model["params"] == job["params"]
    listing = api.get("/v1/models").json()
    assert listing["total"] >= 1 and job["model_id"] in {m["id"] for m in listing["items"]}


def test_predict_json_and_file_give_the_stored_labels(trained):
    api, job, X, _ = trained
    stored = [item["label"] for item in api.get(f"/v1/jobs/{job['id']}/labels", params={"limit": N}).json()["items"]]
    url = f"/v1/models/{job['model_id']}/predict"
    r = api.post(url, json={"instances": X[:20].tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == stored[:20] and "embeddings" not in r.json()
    np.testing.assert_allclose(np.asarray(r.json()["probabilities"]).sum(1), 1, rtol=1e-5)

    csv = "\n".join(",".join(str(v) for v in row) for row in X[20:40].tolist()).encode()
    r = api.post(url, params={"embeddings": "true"}, files={"file": ("rows.csv", csv)})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == stored[20:40]
    assert np.asarray(r.json()["embeddings"]).shape == (20, 5)


def test_predict_takes_the_training_csv_back_and_a_single_row_file(trained):
    api, job, X, y = trained
    stored = [item["label"] for item in api.get(f"/v1/jobs/{job['id']}/labels", params={"limit": N}).json()["items"]]
    url = f"/v1/models/{job['model_id']}/predict"
    header = ",".join([f"f{i}" for i in range(D)] + ["truth"])
    training_csv = header + "\n" + "\n".join(",".join(map(str, [*row, label])) for row, label in
                                             zip(X[:10].tolist(), y[:10])) + "\n"
    r = api.post(url, files={"file": ("train.csv", training_csv.encode())}, data={"label_column": "truth"})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == stored[:10]
    assert_error(api.post(url, files={"file": ("train.csv", training_csv.encode())}), 422, "wrong_shape")

    for name, content in [("one.csv", ",".join(map(str, X[7].tolist())).encode()), ("one.npy", npy_bytes(X[7:8]))]:
        r = api.post(url, files={"file": (name, content)})
        assert r.status_code == 200, r.text
        assert r.json()["labels"] == [stored[7]]


def test_predict_refuses_bad_instances(trained):
    api, job, _, _ = trained
    url = f"/v1/models/{job['model_id']}/predict"
    assert_error(api.post(url, json={"instances": [[1.0] * (D + 1)]}), 422, "wrong_shape")
    assert_error(api.post(url, json={"instances": [[1.0] * D, [1.0] * 3]}), 422, "ragged_rows")
    assert_error(api.post(url, json={"instances": [["a"] * D]}), 422, "non_numeric")
    assert_error(api.post(url, json={"instances": []}), 422, "invalid_instances")
    assert_error(api.post(url, json={"rows": [[1.0] * D]}), 422, "invalid_request")
    nan = b'{"instances": [[NaN, 1, 1, 1, 1, 1, 1, 1]]}'
    assert_error(api.post(url, content=nan, headers={"Content-Type": "application/json"}), 422, "non_finite")
    assert_error(api.post(url, content=b"{oops", headers={"Content-Type": "application/json"}),
                 400, "malformed_request")
    assert_error(api.post(url, content=b"1,2", headers={"Content-Type": "text/csv"}), 415, "unsupported_media_type")
    assert_error(api.post(url, files={"file": ("x.npy", npy_bytes(np.ones((2, 3))))}), 422, "wrong_shape")


def test_pretrained_from_reuses_the_autoencoder(trained, backend):
    api, job, _, _ = trained
    body = {"dataset_id": job["dataset_id"], "method": "idec", "n_clusters": K, "pretrained_from": job["id"],
            "params": TINY_DEC["params"]}
    assert_error(api.post("/v1/jobs", json={**body, "params": {**body["params"], "embedding_dim": 4}}),
                 422, "pretrained_architecture")
    assert_error(api.post("/v1/jobs", json={**body, "method": "kmeans", "params": {}}),
                 422, "pretrained_no_autoencoder")
    other = upload(api, "other.npy", npy_bytes(blobs(30, D)[0])).json()["id"]
    assert_error(api.post("/v1/jobs", json={**body, "dataset_id": other}), 422, "pretrained_other_dataset")

    reuse = api.post("/v1/jobs", json=body)
    assert reuse.status_code == 202, reuse.text
    assert run_job(reuse.json()["id"], backend.settings) == "succeeded"
    phases = {row["phase"] for row in api.get(f"/v1/jobs/{reuse.json()['id']}/history").json()}
    assert "pretrain" not in phases and "finetune" in phases


def test_predict_answers_npy_when_asked(trained):
    api, job, X, _ = trained
    url = f"/v1/models/{job['model_id']}/predict"
    as_json = api.post(url, params={"embeddings": "true"}, json={"instances": X[:30].tolist()}).json()
    r = api.post(url, params={"embeddings": "true"}, json={"instances": X[:30].tolist()},
                 headers={"Accept": "application/x-npy"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy"
    table = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert table.shape == (30,) and set(table.dtype.names) == {"labels", "probabilities", "embeddings"}
    assert table["labels"].tolist() == as_json["labels"]
    # The JSON carries the float32 values widened to float64: the same numbers.
    np.testing.assert_array_equal(table["probabilities"], np.float32(as_json["probabilities"]))
    np.testing.assert_array_equal(table["embeddings"], np.float32(as_json["embeddings"]))

    file = api.post(url, files={"file": ("rows.npy", npy_bytes(X[:30]))}, headers={"Accept": "application/x-npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(file.content))["probabilities"], table["probabilities"])


def test_weights_are_stored_in_two_parts_and_rebuild_the_model(trained, backend):
    api, job, X, _ = trained
    with new_session(engine_for(backend.settings.database_url)) as session:
        parts = {row.part: row for row in session.exec(
            select(ModelWeights).where(ModelWeights.model_id == job["model_id"])).all()}
        inference = results.inference_weights(session, job["model_id"])
        whole = results.model_bytes(session, job["model_id"])
    assert set(parts) == {"inference", "pretrained"}
    for row in parts.values():
        assert row.sha256 == hashlib.sha256(row.data).hexdigest() and row.size_bytes == len(row.data)
    served, full = DeepClusterer.from_bytes(*inference, device="cpu"), DeepClusterer.from_bytes(*whole, device="cpu")
    assert served.pretrained_state_ is None and full.pretrained_state_ is not None
    np.testing.assert_array_equal(served.predict_proba(X), full.predict_proba(X))
    assert served.predict(X).tolist() == api.post(f"/v1/models/{job['model_id']}/predict",
                                                  json={"instances": X.tolist()}).json()["labels"]


def test_a_cached_model_predicts_without_reading_weights_or_manifest(trained, backend):
    api, job, X, _ = trained
    url = f"/v1/models/{job['model_id']}/predict"
    assert api.post(url, json={"instances": X[:1].tolist()}).status_code == 200  # cached from here on
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = backend.shared_app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        r = api.post(url, json={"instances": X[:1].tolist()})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert r.status_code == 200
    assert any("FROM models" in s for s in statements)  # ownership is still checked on every request
    assert not any("model_weights" in s or "manifest" in s for s in statements), statements
    assert_error(api.post(f"/v1/models/{job['model_id']}x/predict", json={"instances": X[:1].tolist()}),
                 404, "model_not_found")


def test_predict_refuses_hostile_json(trained):
    api, job, _, _ = trained
    url = f"/v1/models/{job['model_id']}/predict"
    headers = {"Content-Type": "application/json"}
    deep = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_error(api.post(url, content=deep, headers=headers), 400, "malformed_request")
    assert_error(api.post(url, content=b'{"instances": [[1, 2, "\xff\xfe"]]}', headers=headers), 400,
                 "malformed_request")
    assert_error(api.post(url, content=b'{"instances": [[1e39, 1, 1, 1, 1, 1, 1, 1]]}', headers=headers), 422,
                 "non_finite")
