"""`app.client.Client` against a real `deepclust serve` (auth on): upload, train with a progress
bar, results as numpy, predict, typed errors carrying the API's code and message."""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from deepclust.app.client import Client, Conflict, ConnectionFailed, InvalidRequest, JobFailed, NotFound, Prediction, Unauthorized

from ..conftest import TINY_DEC, digits
from ..processes import free_port

N, K = 300, 10


@pytest.fixture(scope="module")
def api(served):
    with Client(served.url, key=served.key) as client:
        yield client


@pytest.fixture(scope="module")
def trained(api):
    """A DEC job on digits, waited for with the progress bar drawn into a string."""
    X, y = digits(N)
    dataset = api.upload_dataset(X, labels=y, name="digits")
    job = api.start_job(dataset["id"], "dec", K, params=TINY_DEC["params"], pretrain=TINY_DEC["pretrain"], seed=0)
    screen = io.StringIO()
    final = job.wait(progress=True, console=Console(file=screen, force_terminal=True, width=160))
    return X, y, dataset, job, final, screen.getvalue()


def test_importing_the_client_does_not_import_torch_or_the_server():
    code = ("import sys; from deepclust import Client; heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'fastapi', 'starlette', 'sqlmodel', 'sqlalchemy', 'pandas') "
            "or m.startswith(('deepclust.models', 'deepclust.app.core', 'deepclust.app.http'))]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_upload_returns_the_dataset_resource(trained, api):
    X, y, dataset, *_ = trained
    assert (dataset["n_samples"], dataset["n_features"], dataset["n_classes"]) == (N, 64, 10)
    assert dataset["name"] == "digits" and dataset["has_labels"]
    assert api.dataset(dataset["id"]) == dataset
    assert dataset["id"] in [d["id"] for d in api.datasets()]


def test_upload_from_a_csv_path_with_a_label_column(api, tmp_path):
    X, y = digits(40)
    path = tmp_path / "few.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%g",
               header=",".join([f"p{i}" for i in range(64)] + ["digit"]), comments="")
    dataset = api.upload_dataset(path, label_column="digit")
    assert (dataset["name"], dataset["format"], dataset["n_samples"], dataset["n_features"]) == ("few.csv", "csv", 40, 64)
    assert dataset["n_classes"] == len(set(y))


def test_wait_draws_a_bar_and_returns_the_final_job(trained):
    _, _, _, job, final, screen = trained
    assert final["status"] == "succeeded" and final == job.resource
    assert job.id in screen and "succeeded" in screen and "100%" in screen
    assert job.model_id == final["model_id"] and job.model_id.startswith("mdl_")


def test_results_come_back_as_numpy_and_pandas(trained, api):
    X, y, _, job, _, _ = trained
    labels = job.labels()
    assert labels.shape == (N,) and labels.dtype == np.int64 and 0 <= labels.min() and labels.max() < K
    page = api.request("GET", f"/v1/jobs/{job.id}/labels", params={"limit": N}).json()
    assert labels.tolist() == [item["label"] for item in page["items"]]
    confidences = job.confidences()
    assert confidences.shape == (N,) and np.all((confidences > 0) & (confidences <= 1))

    centroids = job.centroids()
    assert centroids.shape == (K, TINY_DEC["params"]["embedding_dim"])
    metrics = job.metrics()
    assert sum(metrics["cluster_sizes"]) == N and set(metrics["external"]) == {"acc", "nmi", "ari"}

    history = job.history()
    assert isinstance(history, pd.DataFrame)
    assert set(history["phase"]) == {"pretrain", "finetune"} and {"loss", "epoch"} <= set(history.columns)
    assert (history["phase"] == "pretrain").sum() == TINY_DEC["pretrain"]["epochs"]


def test_predict_gives_back_the_training_labels(trained, api):
    X, _, _, job, _, _ = trained
    prediction = api.predict(job.model_id, X[:20])
    assert isinstance(prediction, Prediction)
    labels, probabilities = prediction
    assert labels.tolist() == job.labels()[:20].tolist()
    assert probabilities.shape == (20, K) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    one, _ = api.predict(job.model_id, X[3])  # a single sample, as a vector
    assert one.tolist() == [labels[3]]
    assert api.embed(job.model_id, X[:4]).shape == (4, TINY_DEC["params"]["embedding_dim"])


def test_errors_are_typed_and_carry_the_api_code_and_message(trained, api, served):
    _, _, dataset, job, _, _ = trained
    with pytest.raises(NotFound) as caught:
        api.job("job_nope")
    assert caught.value.status == 404 and caught.value.code == "job_not_found" and "job_nope" in caught.value.message

    with pytest.raises(InvalidRequest) as caught:
        api.start_job(dataset["id"], "dec", 1)
    assert caught.value.code == "invalid_n_clusters" and caught.value.details["n_clusters"] == 1

    with pytest.raises(Conflict) as caught:
        job.cancel()
    assert caught.value.code == "job_finished"

    with pytest.raises(InvalidRequest) as caught:
        api.predict(job.model_id, np.zeros((2, 5)))
    assert caught.value.code == "wrong_shape"

    with Client(served.url) as anonymous, pytest.raises(Unauthorized) as caught:
        anonymous.datasets()
    assert caught.value.code == "unauthorized"

    with Client(f"http://127.0.0.1:{free_port()}") as nowhere, pytest.raises(ConnectionFailed) as caught:
        nowhere.datasets()
    assert "Cannot reach" in caught.value.message


def test_cancel_a_queued_job_and_wait_raises_on_failure(trained, api):
    _, _, dataset, *_ = trained
    # Long enough that the second one is still queued behind it (the embedded runner runs one at a time).
    blocker = api.start_job(dataset["id"], "dec", K, params=TINY_DEC["params"], pretrain={"epochs": 500, "batch_size": 16})
    queued = api.start_job(dataset["id"], "dec", K, params=TINY_DEC["params"], pretrain=TINY_DEC["pretrain"])
    assert queued.cancel()["status"] == "cancelled"
    with pytest.raises(JobFailed) as caught:
        queued.wait(progress=False, raise_on_failure=True)
    assert caught.value.details["job"]["status"] == "cancelled"
    with pytest.raises(Conflict) as caught:
        queued.labels()
    assert caught.value.code == "job_not_succeeded"
    blocker.cancel()
    assert blocker.wait(progress=False, timeout=300)["status"] == "cancelled"
    assert {j.id for j in api.jobs(status="cancelled", dataset_id=dataset["id"])} == {queued.id, blocker.id}
    queued.delete()
    with pytest.raises(NotFound):
        queued.refresh()


def test_models_download_import_delete_and_job_logs(trained, api, tmp_path):
    X, _, _, job, _, _ = trained
    path = api.download_model(job.model_id, tmp_path / "model.zip")
    imported = api.import_model(path)
    assert imported["job_id"] is None and imported["method"] == "dec"
    assert api.predict(imported["id"], X[:10]).labels.tolist() == api.predict(job.model_id, X[:10]).labels.tolist()
    onnx = api.download_model(job.model_id, tmp_path / "model.onnx", format="onnx")
    import onnxruntime as ort

    probabilities, _ = ort.InferenceSession(onnx.read_bytes()).run(None, {"input": X[:10]})
    np.testing.assert_allclose(probabilities, api.predict(job.model_id, X[:10]).probabilities, atol=1e-5)
    api.delete_model(imported["id"])
    with pytest.raises(NotFound):
        api.model(imported["id"])
    log = job.logs()
    assert "pretrain begins" in log and f"job {job.id} succeeded" in log


def test_delete_a_dataset(api):
    X, _ = digits(30)
    dataset = api.upload_dataset(X)
    api.delete_dataset(dataset["id"])
    with pytest.raises(NotFound) as caught:
        api.dataset(dataset["id"])
    assert caught.value.code == "dataset_not_found"
