"""Batch predictions from the Python client (`Client.start_prediction`, `BatchPrediction`) and the
command line (`deepclust predict --async`, `deepclust predictions ...`) against a real
`deepclust serve` with auth on (its local runner runs them)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from deepclust.app.cli import app
from deepclust.app.client import BatchPrediction, Client, Conflict, InvalidRequest, NotFound, Prediction

from ..conftest import blobs

K = 3


@pytest.fixture(scope="module")
def api(served):
    with Client(served.url, key=served.key) as client:
        yield client


@pytest.fixture(scope="module")
def model(api):
    """A k-means model (no pretraining: seconds) and new data of its width."""
    X, _ = blobs(90, 8, K)
    dataset = api.upload_dataset(X, name="train")
    job = api.start_job(dataset["id"], "kmeans", K, params={"n_init": 3})
    assert job.wait(progress=False)["status"] == "succeeded"
    new, _ = blobs(50, 8, K, seed=0)
    return job.model_id, (new + np.random.default_rng(2).normal(0, 1, new.shape)).astype(np.float32)


def test_start_wait_labels_list_cancel_delete(api, model):
    model_id, X = model
    dataset = api.upload_dataset(X, name="new")
    batch = api.start_prediction(model_id, dataset["id"])
    assert isinstance(batch, BatchPrediction) and batch.id.startswith("prd_")
    screen = io.StringIO()
    final = batch.wait(progress=True, console=Console(file=screen, force_terminal=True, width=160))
    assert final["status"] == "succeeded" and batch.status == "succeeded"
    assert f"prediction {batch.id}" in screen.getvalue() and "50/50 samples" in screen.getvalue()

    expected = api.predict(model_id, X)
    assert batch.labels().tolist() == expected.labels.tolist()
    both = batch.labels(probabilities=True)
    assert isinstance(both, Prediction) and both.labels.tolist() == expected.labels.tolist()
    np.testing.assert_allclose(both.probabilities, expected.probabilities, rtol=1e-5, atol=1e-6)

    assert batch.id in [p.id for p in api.list_predictions()]
    assert [p.id for p in api.list_predictions(dataset_id=dataset["id"])] == [batch.id]
    assert api.get_prediction(batch.id).status == "succeeded"
    with pytest.raises(Conflict) as caught:
        batch.cancel()
    assert caught.value.code == "prediction_finished"
    batch.delete()
    with pytest.raises(NotFound):
        api.get_prediction(batch.id)


def test_a_dataset_that_does_not_fit_is_refused(api, model):
    model_id, _ = model
    narrow = api.upload_dataset(np.ones((4, 5), np.float32), name="narrow")
    with pytest.raises(InvalidRequest) as caught:
        api.start_prediction(model_id, narrow["id"])
    assert caught.value.code == "dataset_not_for_model" and caught.value.details["expected_shape"] == [8]


@pytest.fixture(scope="module")
def cli(served):
    runner = CliRunner()
    env = {"DEEPCLUST_API": served.url, "DEEPCLUST_KEY": served.key, "COLUMNS": "80"}

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return invoke


def test_predict_async_then_the_predictions_commands(cli, api, model, tmp_path):
    model_id, X = model
    path = tmp_path / "new.npy"
    np.save(path, X)
    started = json.loads(cli("predict", model_id, str(path), "--async", "--json").stdout)
    assert started["id"].startswith("prd_") and started["status"] in ("queued", "running", "succeeded")
    followed = cli("predict", model_id, started["dataset_id"], "--async", "--wait")  # a dataset id, followed
    assert "succeeded" in followed.stderr
    second = followed.stderr.split("prediction ")[1].split()[0]
    api.get_prediction(started["id"]).wait(progress=False)

    expected = api.predict(model_id, X).labels.tolist()
    cli("predictions", "labels", started["id"], "-o", str(tmp_path / "l.csv"))
    rows = (tmp_path / "l.csv").read_text().splitlines()
    assert rows[0] == "index,label,confidence" and [int(r.split(",")[1]) for r in rows[1:]] == expected
    cli("predictions", "labels", second, "-o", str(tmp_path / "l.npy"))
    assert np.load(tmp_path / "l.npy").tolist() == expected
    csv = cli("predictions", "labels", second, "--probabilities").stdout.splitlines()
    assert csv[0] == "index,label,confidence,p0,p1,p2" and len(csv) == len(X) + 1
    page = json.loads(cli("predictions", "labels", second, "--format", "json").stdout)
    assert page["total"] == len(X) and [i["label"] for i in page["items"]] == expected

    listed = cli("predictions", "list").stdout
    assert started["id"] in listed and second in listed
    assert max(len(line) for line in listed.splitlines()) <= 80
    assert json.loads(cli("predictions", "show", second, "--json").stdout)["status"] == "succeeded"
    assert "50/50 samples" in cli("predictions", "show", second).stdout
    assert "attempt 1" in cli("predictions", "logs", second).stdout
    assert "attempt 1" in api.get_prediction(second).logs()
    error = json.loads(cli("predictions", "cancel", second, "--json", code=1).stdout)
    assert error["error"]["code"] == "prediction_finished"
    assert "deleted" in cli("predictions", "delete", second, "-y").stderr
    error = json.loads(cli("--json", "predictions", "show", second, code=1).stdout)
    assert error["error"]["code"] == "prediction_not_found"

    missing = cli("predict", model_id, str(tmp_path / "missing.npy"), "--async", code=2)
    assert "not a file" in missing.output
    assert "add --async" in cli("predict", model_id, str(path), "--wait", code=2).output
