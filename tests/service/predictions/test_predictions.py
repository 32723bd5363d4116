"""Batch predictions (API 1.2) over HTTP, on SQLite and PostgreSQL: a model applied to a stored
dataset in the worker (run in-process with run_prediction, as a worker would), its labels in the
three formats equal to the synchronous predict's, refusals, tenancy, cancel, delete, the reaper's
retry, and image and encoder models."""
from __future__ import annotations

import io

import numpy as np
import pytest

from deepclust.app.core import predictionstate
from deepclust.app.core.db import engine_for, new_session, utcnow
from deepclust.app.core.dispatch import LocalDispatcher
from deepclust.app.core.tables import Prediction
from deepclust.app.predictions.service import reap_once
from deepclust.worker.predict import run_prediction
from deepclust.worker.run import run_job

from ..conftest import artifacts, blobs, npy_bytes, upload
from ..encoders.test_encoders import tiny_encoder_onnx, upload_encoder
from ..http.test_bad_input import assert_error
from ..imagefiles import class_archive, zip_bytes

K = 3


def settings_of(backend, **values):
    """Small batches and a part after every batch, so a tiny dataset still takes many of both."""
    return backend.settings.model_copy(update={"predict_batch_size": 7, "checkpoint_interval_seconds": 0,
                                               **values})


def kmeans_model(api, backend, X) -> str:
    dataset = upload(api, "train.npy", npy_bytes(X)).json()["id"]
    job = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "kmeans", "n_clusters": K,
                                     "params": {"n_init": 3}}).json()
    assert run_job(job["id"], backend.settings) == "succeeded"
    return api.get(f"/v1/jobs/{job['id']}").json()["model_id"]


@pytest.fixture
def model_and_data(backend, api):
    X, _ = blobs(90, 8, K)
    new, _ = blobs(60, 8, K, seed=0)
    new = new + np.random.default_rng(1).normal(0, 1.0, new.shape).astype(np.float32)
    model = kmeans_model(api, backend, X)
    dataset = upload(api, "new.npy", npy_bytes(new)).json()["id"]
    return model, dataset, new


def start(api, model: str, dataset: str) -> dict:
    r = api.post("/v1/predictions", json={"model_id": model, "dataset_id": dataset})
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/v1/predictions/{r.json()['id']}"
    return r.json()


def sync_predict(api, model: str, X: np.ndarray) -> dict:
    r = api.post(f"/v1/models/{model}/predict", files={"file": ("x.npy", npy_bytes(X))})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_batch_prediction_gives_the_synchronous_labels_in_every_format(backend, api, model_and_data):
    model, dataset, X = model_and_data
    created = start(api, model, dataset)
    assert created["id"].startswith("prd_") and created["status"] == "queued"
    assert {"id", "model_id", "dataset_id", "status", "progress", "error", "created_at", "started_at",
            "finished_at"} <= set(created)
    assert created["model_id"] == model and created["dataset_id"] == dataset and created["n_samples"] == len(X)
    assert_error(api.get(f"/v1/predictions/{created['id']}/labels"), 409, "prediction_not_succeeded")

    assert run_prediction(created["id"], settings_of(backend)) == "succeeded"
    assert run_prediction(created["id"], settings_of(backend)) is None  # a second delivery is a no-op
    done = api.get(f"/v1/predictions/{created['id']}").json()
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["error"] is None
    assert done["progress"] == {"done": len(X), "total": len(X), "fraction": 1.0}
    assert done["started_at"] and done["finished_at"]

    expected = sync_predict(api, model, X)
    labels, proba = np.asarray(expected["labels"]), np.asarray(expected["probabilities"])
    base = f"/v1/predictions/{created['id']}/labels"
    page = api.get(base, params={"offset": 10, "limit": 25}).json()
    assert page["total"] == len(X) and page["offset"] == 10 and len(page["items"]) == 25
    assert [i["index"] for i in page["items"]] == list(range(10, 35))
    assert [i["label"] for i in page["items"]] == labels[10:35].tolist()
    assert "probabilities" not in page["items"][0]
    np.testing.assert_allclose([i["confidence"] for i in page["items"]], proba[10:35].max(1), rtol=1e-5)
    with_p = api.get(base, params={"limit": 1000, "probabilities": "true"}).json()
    np.testing.assert_allclose([i["probabilities"] for i in with_p["items"]], proba, rtol=1e-5, atol=1e-6)

    csv = api.get(base, params={"format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.splitlines()
    assert rows[0] == "index,label,confidence" and len(rows) == len(X) + 1
    assert [int(r.split(",")[1]) for r in rows[1:]] == labels.tolist()
    csv_p = api.get(base, params={"format": "csv", "probabilities": "true"}).text.splitlines()
    assert csv_p[0] == "index,label,confidence,p0,p1,p2"
    np.testing.assert_allclose([[float(v) for v in r.split(",")[3:]] for r in csv_p[1:]], proba, rtol=1e-4)

    npy = np.load(io.BytesIO(api.get(base, params={"format": "npy"}).content), allow_pickle=False)
    assert npy.dtype == np.int64 and npy.tolist() == labels.tolist()
    table = np.load(io.BytesIO(api.get(base, params={"format": "npy", "probabilities": "true"}).content))
    assert table["labels"].tolist() == labels.tolist()
    np.testing.assert_allclose(table["probabilities"], proba, rtol=1e-5, atol=1e-6)

    # the parts are gone once the arrays are published; the log tells the attempt
    files = [f for f in artifacts(backend.data_dir) if f.startswith(f"predictions/{created['id']}/")]
    assert sorted(files) == [f"predictions/{created['id']}/labels.npy", f"predictions/{created['id']}/probabilities.npy"]
    assert "attempt 1" in (backend.data_dir / "artifacts" / "logs" / f"{created['id']}.log").read_text()
    logs = api.get(f"/v1/predictions/{created['id']}/logs")  # the same log, through the API
    assert logs.status_code == 200 and logs.headers["content-type"].startswith("text/plain")
    assert "attempt 1" in logs.text

    listed = api.get("/v1/predictions").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == created["id"]
    assert api.get("/v1/predictions", params={"model_id": "mdl_other"}).json()["total"] == 0
    assert api.get("/v1/predictions", params={"status": "succeeded", "dataset_id": dataset}).json()["total"] == 1


def test_refusals_create_nothing(backend, api, model_and_data):
    model, dataset, _ = model_and_data
    narrow = upload(api, "narrow.npy", npy_bytes(np.ones((5, 7), np.float32))).json()["id"]
    images = upload(api, "shapes.zip", zip_bytes(class_archive(2, K, 16)[0])).json()["id"]
    post = lambda body: api.post("/v1/predictions", json=body)  # noqa: E731
    assert_error(post({"model_id": "mdl_nope", "dataset_id": dataset}), 404, "model_not_found")
    assert_error(post({"model_id": model, "dataset_id": "ds_nope"}), 404, "dataset_not_found")
    error = assert_error(post({"model_id": model, "dataset_id": narrow}), 422, "dataset_not_for_model")
    assert error["details"]["expected_shape"] == [8] and error["details"]["dataset_shape"] == [7]
    error = assert_error(post({"model_id": model, "dataset_id": images}), 422, "dataset_not_for_model")
    assert error["details"]["expected_kind"] == "features" and "images" in error["message"]
    assert_error(post({"model_id": model}), 422, "invalid_request")
    assert_error(post({"model_id": model, "dataset_id": dataset, "extra": 1}), 422, "invalid_request")
    assert api.get("/v1/predictions").json()["total"] == 0
    for path in ("/v1/predictions/prd_nope", "/v1/predictions/prd_nope/labels"):
        assert_error(api.get(path), 404, "prediction_not_found")
    assert_error(api.post("/v1/predictions/prd_nope/cancel"), 404, "prediction_not_found")
    assert_error(api.delete("/v1/predictions/prd_nope"), 404, "prediction_not_found")
    assert_error(api.get("/v1/predictions/prd_nope/labels?format=xml"), 400, "malformed_request")


def test_another_tenant_sees_nothing(backend, api, model_and_data):
    model, dataset, _ = model_and_data
    mine = start(api, model, dataset)
    with backend.client() as other:
        for path in (f"/v1/predictions/{mine['id']}", f"/v1/predictions/{mine['id']}/labels",
                     f"/v1/predictions/{mine['id']}/logs"):
            assert_error(other.get(path), 404, "prediction_not_found")
        assert_error(other.post(f"/v1/predictions/{mine['id']}/cancel"), 404, "prediction_not_found")
        assert_error(other.delete(f"/v1/predictions/{mine['id']}"), 404, "prediction_not_found")
        assert other.get("/v1/predictions").json() == {"items": [], "total": 0}
        own = upload(other, "x.npy", npy_bytes(np.ones((4, 8), np.float32))).json()["id"]
        assert_error(other.post("/v1/predictions", json={"model_id": model, "dataset_id": own}), 404,
                     "model_not_found")
    assert api.get(f"/v1/predictions/{mine['id']}").json()["status"] == "queued"


def test_cancel_queued_at_once_running_within_a_batch_and_delete(backend, api, model_and_data):
    model, dataset, _ = model_and_data
    queued = start(api, model, dataset)
    r = api.post(f"/v1/predictions/{queued['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    assert run_prediction(queued["id"], settings_of(backend)) is None  # a cancelled one is never claimed
    assert_error(api.post(f"/v1/predictions/{queued['id']}/cancel"), 409, "prediction_finished")

    running = start(api, model, dataset)
    engine = engine_for(backend.settings.database_url)
    with new_session(engine) as session:  # a worker has claimed it
        assert predictionstate.claim(session, running["id"], "tester:1").attempts == 1
    assert_error(api.delete(f"/v1/predictions/{running['id']}"), 409, "prediction_active")
    assert_error(api.delete(f"/v1/models/{model}"), 409, "model_in_use")
    assert_error(api.delete(f"/v1/datasets/{dataset}"), 409, "dataset_in_use")
    r = api.post(f"/v1/predictions/{running['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "running"
    assert run_prediction(running["id"], settings_of(backend), attempt=1) == "cancelled"
    assert api.get(f"/v1/predictions/{running['id']}").json()["status"] == "cancelled"
    assert_error(api.get(f"/v1/predictions/{running['id']}/labels"), 409, "prediction_not_succeeded")
    assert not [f for f in artifacts(backend.data_dir) if f.startswith(f"predictions/{running['id']}")]

    assert api.delete(f"/v1/predictions/{running['id']}").status_code == 204
    assert_error(api.get(f"/v1/predictions/{running['id']}"), 404, "prediction_not_found")
    assert not (backend.data_dir / "artifacts" / "logs" / f"{running['id']}.log").exists()


def test_past_the_runtime_limit_the_prediction_fails_and_leaves_no_file(backend, api, model_and_data):
    model, dataset, new = model_and_data
    created = start(api, model, dataset)
    # 60 rows in batches of 7: the limit is read before each batch, so a tiny one stops it after the first
    settings = settings_of(backend, max_prediction_runtime_seconds=1e-6)
    assert run_prediction(created["id"], settings) == "failed"
    body = api.get(f"/v1/predictions/{created['id']}").json()
    assert body["status"] == "failed" and body["error"]["code"] == "runtime_exceeded"
    assert f"at row 7 of {len(new)}" in body["error"]["message"]
    assert "DEEPCLUST_MAX_PREDICTION_RUNTIME_SECONDS" in body["error"]["message"]
    assert not [f for f in artifacts(backend.data_dir) if f.startswith(f"predictions/{created['id']}")]

    again = start(api, model, dataset)  # the same prediction within a limit it does not reach
    assert run_prediction(again["id"], settings_of(backend, max_prediction_runtime_seconds=3600)) == "succeeded"


def test_a_lost_worker_is_reaped_and_the_retry_resumes_to_the_same_labels(backend, api, model_and_data):
    model, dataset, X = model_and_data
    created = start(api, model, dataset)
    settings = settings_of(backend, stale_after_seconds=5, retry_backoff_seconds=0)
    engine = engine_for(backend.settings.database_url)
    # A first attempt predicted the first rows and stored them as a part, then its worker died.
    from deepclust.worker.predict import _store_part

    from deepclust.app.core.storage import store_for

    store = store_for(backend.settings.data_dir)
    expected = sync_predict(api, model, X)
    with new_session(engine) as session:
        predictionstate.claim(session, created["id"], "gone:1")
        session.execute(Prediction.__table__.update().where(Prediction.id == created["id"])
                        .values(heartbeat_at=utcnow().replace(year=2000)))
        session.commit()
    _store_part(created["id"], 0, np.asarray(expected["probabilities"][:20], np.float32), store)

    assert reap_once(engine, settings, LocalDispatcher()) == [created["id"]]
    row = api.get(f"/v1/predictions/{created['id']}").json()
    assert row["status"] == "queued" and row["attempts"] == 1
    assert run_prediction(created["id"], settings) == "succeeded"
    done = api.get(f"/v1/predictions/{created['id']}").json()
    assert done["status"] == "succeeded" and done["attempts"] == 2
    labels = api.get(f"/v1/predictions/{created['id']}/labels", params={"format": "npy"}).content
    assert np.load(io.BytesIO(labels)).tolist() == expected["labels"]
    log = (backend.data_dir / "artifacts" / "logs" / f"{created['id']}.log").read_text()
    assert "no heartbeat" in log and "resuming after the 20 of 60 rows" in log


def test_a_lost_worker_of_a_prediction_being_cancelled_ends_it_cancelled(backend, api, model_and_data):
    from deepclust.app.core.storage import store_for
    from deepclust.worker.predict import _store_part

    model, dataset, _ = model_and_data
    created = start(api, model, dataset)
    engine = engine_for(backend.settings.database_url)
    with new_session(engine) as session:
        predictionstate.claim(session, created["id"], "gone:2")
    _store_part(created["id"], 0, np.full((5, K), 1 / K, np.float32), store_for(backend.settings.data_dir))
    assert api.post(f"/v1/predictions/{created['id']}/cancel").json()["status"] == "running"
    with new_session(engine) as session:
        session.execute(Prediction.__table__.update().where(Prediction.id == created["id"])
                        .values(heartbeat_at=utcnow().replace(year=2000)))
        session.commit()
    assert reap_once(engine, settings_of(backend, stale_after_seconds=5), LocalDispatcher()) == []
    assert api.get(f"/v1/predictions/{created['id']}").json()["status"] == "cancelled"
    assert not [f for f in artifacts(backend.data_dir) if f.startswith(f"predictions/{created['id']}")]


def test_a_deleted_dataset_takes_its_finished_predictions(backend, api, model_and_data):
    model, dataset, _ = model_and_data
    created = start(api, model, dataset)
    assert run_prediction(created["id"], settings_of(backend)) == "succeeded"
    assert api.delete(f"/v1/models/{model}").status_code == 204  # a finished prediction keeps its labels
    assert api.get(f"/v1/predictions/{created['id']}/labels", params={"format": "csv"}).status_code == 200
    assert api.delete(f"/v1/datasets/{dataset}").status_code == 204
    assert_error(api.get(f"/v1/predictions/{created['id']}"), 404, "prediction_not_found")
    assert not [f for f in artifacts(backend.data_dir) if f.startswith(f"predictions/{created['id']}")]


def test_a_model_gone_before_the_worker_starts_fails_the_prediction(backend, api, model_and_data):
    model, dataset, _ = model_and_data
    created = start(api, model, dataset)
    with new_session(engine_for(backend.settings.database_url)) as session:  # deleted behind the API's guard
        from deepclust.app.core.tables import TrainedModel

        session.delete(session.get(TrainedModel, model))
        session.commit()
    assert run_prediction(created["id"], settings_of(backend)) == "failed"
    error = api.get(f"/v1/predictions/{created['id']}").json()["error"]
    assert error["code"] == "invalid_input" and model in error["message"]


def test_image_and_encoder_models_predict_image_datasets(backend, api):
    members, _ = class_archive(4, K, 16)
    archive = zip_bytes(members)
    images = upload(api, "shapes.zip", archive).json()["id"]
    enc = upload_encoder(api, tiny_encoder_onnx(), name="tiny").json()["id"]
    for extra in ({}, {"encoder": enc}):
        job = api.post("/v1/jobs", json={"dataset_id": images, "method": "kmeans", "n_clusters": K,
                                         "params": {"n_init": 3}, **extra}).json()
        assert run_job(job["id"], backend.settings) == "succeeded"
        model = api.get(f"/v1/jobs/{job['id']}").json()["model_id"]
        created = start(api, model, images)
        assert run_prediction(created["id"], settings_of(backend, predict_batch_size=5)) == "succeeded"
        got = api.get(f"/v1/predictions/{created['id']}/labels", params={"limit": 100, "probabilities": "true"}).json()
        expected = api.post(f"/v1/models/{model}/predict", files={"file": ("shapes.zip", archive)}).json()
        assert [i["label"] for i in got["items"]] == expected["labels"]
        np.testing.assert_allclose([i["probabilities"] for i in got["items"]], expected["probabilities"],
                                   rtol=1e-4, atol=1e-5)
    features = kmeans_model(api, backend, blobs(30, 8, K)[0])
    flat = upload(api, "flat.npy", npy_bytes(np.ones((4, 256), np.float32))).json()["id"]
    error = assert_error(api.post("/v1/predictions", json={"model_id": model, "dataset_id": flat}), 422,
                         "dataset_not_for_model")  # an encoder model takes images, not their pixels as features
    assert error["details"]["expected_kind"] == "images"
    assert_error(api.post("/v1/predictions", json={"model_id": features, "dataset_id": images}), 422,
                 "dataset_not_for_model")


@pytest.mark.needs("redis")
def test_queued_predictions_are_sent_again_when_the_broker_lost_its_messages(backend, api, model_and_data):
    """On Celery: a prediction is a message of its own task; Redis restarted without persistence (its
    marker gone) makes the reaper mark every queued prediction pending, and its round sends them."""
    import json
    import uuid

    import redis

    from deepclust.app.core.dispatch import CeleryDispatcher
    from deepclust.app.jobs.reaper import reap_once as reap_jobs

    from ..conftest import REDIS_URL

    model, dataset, _ = model_and_data
    queue, broker = f"test-{uuid.uuid4().hex[:12]}", f"{REDIS_URL}/{np.random.default_rng().integers(1, 16)}"
    settings = backend.settings.model_copy(update={"queue": queue, "broker_url": broker, "dispatcher": "celery"})
    engine = engine_for(settings.database_url)
    dispatcher = CeleryDispatcher(settings)
    created = start(api, model, dataset)  # the test app's dispatcher is local: no message yet
    r = redis.Redis.from_url(broker)
    try:
        r.delete(queue, f"deepclust:{queue}:alive")  # what a restart without persistence leaves
        reap_jobs(engine, settings, dispatcher)
        with new_session(engine) as session:
            assert session.get(Prediction, created["id"]).dispatch_pending
        reap_once(engine, settings, dispatcher)
        messages = [json.loads(m)["headers"] for m in r.lrange(queue, 0, -1)]
        assert [(m["task"], m["argsrepr"]) for m in messages if created["id"] in m["argsrepr"]] == [
            ("deepclust.run_prediction", f"['{created['id']}']")]
        with new_session(engine) as session:
            assert not session.get(Prediction, created["id"]).dispatch_pending
    finally:
        r.delete(queue, f"deepclust:{queue}:alive")
        r.close()
        with new_session(engine) as session:
            session.delete(session.get(Prediction, created["id"]))
            session.commit()


def test_retention_removes_old_finished_predictions_with_their_files(backend, api, model_and_data):
    from deepclust.app.core.storage import store_for
    from deepclust.app.predictions.service import purge_expired

    model, dataset, _ = model_and_data
    old, recent, queued = (start(api, model, dataset) for _ in range(3))
    for prediction in (old, recent):
        assert run_prediction(prediction["id"], settings_of(backend)) == "succeeded"
    engine = engine_for(backend.settings.database_url)
    with new_session(engine) as session:
        session.execute(Prediction.__table__.update().where(Prediction.id == old["id"])
                        .values(finished_at=utcnow().replace(year=2000)))
        session.commit()
    store = store_for(backend.settings.data_dir)
    assert purge_expired(engine, store, retention_days=7) == [old["id"]]
    assert_error(api.get(f"/v1/predictions/{old['id']}"), 404, "prediction_not_found")
    assert not [f for f in artifacts(backend.data_dir) if f.startswith(f"predictions/{old['id']}")]
    assert api.get(f"/v1/predictions/{recent['id']}").json()["status"] == "succeeded"
    assert api.get(f"/v1/predictions/{queued['id']}").json()["status"] == "queued"


def test_the_document_lists_the_routes_and_the_codes_they_answer(api):
    paths = api.get("/openapi.json").json()["paths"]

    def codes(path: str, method: str, status: str) -> str:
        return paths[path][method]["responses"][status]["description"]

    assert {"post", "get"} <= set(paths["/v1/predictions"])
    assert {"get", "delete"} <= set(paths["/v1/predictions/{prediction_id}"])
    for code in ("`model_not_found`", "`dataset_not_found`"):
        assert code in codes("/v1/predictions", "post", "404")
    assert "`dataset_not_for_model`" in codes("/v1/predictions", "post", "422")
    assert "`broker_unavailable`" in codes("/v1/predictions", "post", "503")
    assert "`prediction_not_succeeded`" in codes("/v1/predictions/{prediction_id}/labels", "get", "409")
    assert "`prediction_finished`" in codes("/v1/predictions/{prediction_id}/cancel", "post", "409")
    assert "`prediction_active`" in codes("/v1/predictions/{prediction_id}", "delete", "409")
    assert "`model_in_use`" in codes("/v1/models/{model_id}", "delete", "409")
    assert "`dataset_in_use`" in codes("/v1/datasets/{dataset_id}", "delete", "409")



def test_the_local_runner_takes_the_oldest_of_queued_jobs_and_predictions(tmp_path):
    """One runner, one process at a time, for both: whichever was queued first runs first (on a
    database of its own, so no other test's queued rows count)."""
    from datetime import timedelta

    from deepclust.app.core.migrate import upgrade
    from deepclust.app.core.settings import Settings
    from deepclust.app.core.tables import Job
    from deepclust.worker.local import LocalRunner

    url = f"sqlite:///{tmp_path / 'runner.db'}"
    upgrade(url)
    runner = LocalRunner(Settings(database_url=url, data_dir=tmp_path, dispatcher="local"))
    now = utcnow()  # not started: no process is spawned
    with new_session(engine_for(url)) as session:
        session.add(Prediction(id="prd_first", tenant_id="t", model_id="mdl_x", dataset_id="ds_x", created_at=now))
        session.add(Job(id="job_second", tenant_id="t", dataset_id="ds_x", method="kmeans", n_clusters=2, params={},
                        created_at=now + timedelta(seconds=1)))
        session.add(Prediction(id="prd_third", tenant_id="t", model_id="mdl_x", dataset_id="ds_x",
                               created_at=now + timedelta(seconds=2)))
        session.commit()
        assert runner._oldest() == "prd_first"
        predictionstate.request_cancel(session, "prd_first")
        assert runner._oldest() == "job_second"
        session.get(Job, "job_second").status = "cancelled"
        session.commit()
        assert runner._oldest() == "prd_third"
        predictionstate.request_cancel(session, "prd_third")
        assert runner._oldest() is None
