"""Deleting jobs, models and datasets (what goes with them, 409 while a job is queued or running),
retention of old finished jobs, and the per-job log."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import text

from deepclust.app.core.db import engine_for, utcnow
from deepclust.app.retention import purge_expired
from deepclust.app.core.storage import store_for
from deepclust.worker.run import run_job

from ..conftest import TINY_DEC, artifacts, blobs, npy_bytes, set_job, upload
from ..processes import wait_until
from ..http.test_bad_input import assert_error

N, D, K = 90, 6, 3
RESULT_TABLES = ("job_history", "assignments", "centroids", "metrics", "models")


@pytest.fixture
def dataset(api) -> str:
    X, y = blobs(N, D, K)
    return upload(api, "blobs.npy", npy_bytes(X), labels=("y.txt", "\n".join(map(str, y)).encode())).json()["id"]


def start(api, dataset: str, **changes) -> str:
    r = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": K, **TINY_DEC, **changes})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def trained(api, backend, dataset: str) -> dict:
    job_id = start(api, dataset)
    assert run_job(job_id, backend.settings) == "succeeded"
    return api.get(f"/v1/jobs/{job_id}").json()


def rows_of(backend, job_id: str) -> dict[str, int]:
    with engine_for(backend.settings.database_url).connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t} WHERE job_id = :j"), {"j": job_id}).scalar_one()
                for t in RESULT_TABLES}


def test_deleting_a_finished_job_takes_its_model_results_and_files(api, backend, dataset):
    job = trained(api, backend, dataset)
    assert all(rows_of(backend, job["id"]).values())
    assert any(job["id"] in path for path in artifacts(backend.data_dir))  # its log

    queued = start(api, dataset)
    error = assert_error(api.delete(f"/v1/jobs/{queued}"), 409, "job_active")
    assert f"/v1/jobs/{queued}/cancel" in error["message"] and error["details"]["status"] == "queued"
    assert api.post(f"/v1/jobs/{queued}/cancel").json()["status"] == "cancelled"
    assert api.delete(f"/v1/jobs/{queued}").status_code == 204

    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert_error(api.get(f"/v1/jobs/{job['id']}"), 404, "job_not_found")
    assert_error(api.get(f"/v1/models/{job['model_id']}"), 404, "model_not_found")
    assert_error(api.post(f"/v1/models/{job['model_id']}/predict", json={"instances": [[0.0] * D]}), 404,
                 "model_not_found")
    assert_error(api.delete(f"/v1/jobs/{job['id']}"), 404, "job_not_found")
    assert rows_of(backend, job["id"]) == dict.fromkeys(RESULT_TABLES, 0)
    assert not any(job["id"] in path for path in artifacts(backend.data_dir))
    assert api.get(f"/v1/datasets/{dataset}").status_code == 200  # the dataset stays


def test_a_running_job_cannot_be_deleted(api, backend, dataset):
    job_id = start(api, dataset)
    set_job(backend, job_id, status="running", attempts=1)
    assert assert_error(api.delete(f"/v1/jobs/{job_id}"), 409, "job_active")["details"]["status"] == "running"
    assert api.get(f"/v1/jobs/{job_id}").status_code == 200


def test_deleting_a_model_keeps_the_job_and_its_results(api, backend, dataset):
    job = trained(api, backend, dataset)
    assert api.post(f"/v1/models/{job['model_id']}/predict", json={"instances": [[0.0] * D]}).status_code == 200
    assert api.delete(f"/v1/models/{job['model_id']}").status_code == 204
    assert_error(api.get(f"/v1/models/{job['model_id']}"), 404, "model_not_found")
    assert_error(api.post(f"/v1/models/{job['model_id']}/predict", json={"instances": [[0.0] * D]}), 404,
                 "model_not_found")  # not answered from the model cache
    after = api.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == "succeeded" and after["model_id"] is None
    assert api.get(f"/v1/jobs/{job['id']}/labels").json()["total"] == N
    assert job["model_id"] not in {m["id"] for m in api.get("/v1/models").json()["items"]}


def test_deleting_a_dataset_takes_its_finished_jobs_and_waits_for_running_ones(api, backend, dataset):
    job = trained(api, backend, dataset)
    queued = start(api, dataset)
    error = assert_error(api.delete(f"/v1/datasets/{dataset}"), 409, "dataset_in_use")
    assert error["details"]["job_ids"] == [queued] and queued in error["message"]
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 200  # nothing went

    api.post(f"/v1/jobs/{queued}/cancel")
    assert api.delete(f"/v1/datasets/{dataset}").status_code == 204
    for url in (f"/v1/datasets/{dataset}", f"/v1/jobs/{job['id']}", f"/v1/jobs/{queued}", f"/v1/models/{job['model_id']}"):
        assert api.get(url).status_code == 404
    assert rows_of(backend, job["id"]) == dict.fromkeys(RESULT_TABLES, 0)
    assert not any(dataset in path or job["id"] in path for path in artifacts(backend.data_dir))


def test_another_tenant_cannot_delete(api, backend, dataset):
    job = trained(api, backend, dataset)
    with backend.client() as other:
        for url in (f"/v1/jobs/{job['id']}", f"/v1/models/{job['model_id']}", f"/v1/datasets/{dataset}"):
            assert other.delete(url).status_code == 404
    assert api.get(f"/v1/models/{job['model_id']}").status_code == 200


def test_retention_removes_only_jobs_that_finished_long_ago(api, backend, dataset):
    old, recent = trained(api, backend, dataset), trained(api, backend, dataset)
    waiting = start(api, dataset)
    set_job(backend, old["id"], finished_at=utcnow() - timedelta(days=8))
    set_job(backend, waiting, created_at=utcnow() - timedelta(days=30))  # old, but not finished
    engine, store = engine_for(backend.settings.database_url), store_for(backend.data_dir)
    assert purge_expired(engine, store, retention_days=7) == [old["id"]]
    assert api.get(f"/v1/jobs/{old['id']}").status_code == 404 and api.get(f"/v1/models/{old['model_id']}").status_code == 404
    assert rows_of(backend, old["id"]) == dict.fromkeys(RESULT_TABLES, 0)
    assert not any(old["id"] in path for path in artifacts(backend.data_dir))
    for kept in (recent["id"], waiting):
        assert api.get(f"/v1/jobs/{kept}").status_code == 200
    assert purge_expired(engine, store, retention_days=7) == []


def test_the_api_applies_retention_when_it_is_set(backend, dataset, api):
    job = trained(api, backend, dataset)
    set_job(backend, job["id"], finished_at=utcnow() - timedelta(days=3))
    app = backend.app(retention_days=2, retention_interval_seconds=0.2)
    with backend.client(app) as client:  # entering the client runs the app's startup
        wait_until(lambda: client.get(f"/v1/jobs/{job['id']}").status_code == 404, 60, "retention to remove the job")


# -- logs -----------------------------------------------------------------------------------------

def test_a_job_log_tells_its_start_device_phases_and_end(api, backend, dataset):
    job_id = start(api, dataset)
    assert api.get(f"/v1/jobs/{job_id}/logs").text == ""  # queued: nothing logged yet
    assert run_job(job_id, backend.settings) == "succeeded"
    r = api.get(f"/v1/jobs/{job_id}/logs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    log = r.text
    for line in ("attempt 1: dec with K=3", "device cpu", "pretrain begins (2 epochs)", "finetune begins (at most",
                 "pretrain ended after 2 of 2 epochs", f"job {job_id} succeeded"):
        assert line in log, log
    assert log.index("pretrain begins") < log.index("finetune begins") < log.index("succeeded")


def test_a_job_log_warns_when_clusters_ended_empty(api, backend):
    # Two distinct points, three clusters asked for: one cluster cannot get a sample.
    X = np.repeat(np.array([[0.0] * D, [1.0] * D], np.float32), 20, axis=0)
    dataset = upload(api, "two-points.npy", npy_bytes(X)).json()["id"]
    r = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "kmeans", "n_clusters": 3})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert run_job(job_id, backend.settings) == "succeeded"
    assert "clusters_emptied: only 2 of 3 clusters hold samples" in api.get(f"/v1/jobs/{job_id}/logs").text
    assert sorted(api.get(f"/v1/jobs/{job_id}/metrics").json()["cluster_sizes"]) == [0, 20, 20]


def test_a_job_log_says_nothing_of_empty_clusters_when_none_is(api, backend, dataset):
    job = trained(api, backend, dataset)
    assert "clusters_emptied" not in api.get(f"/v1/jobs/{job['id']}/logs").text


def test_a_failed_job_log_has_the_traceback(api, backend, dataset):
    job_id = start(api, dataset)
    (backend.data_dir / "artifacts" / "datasets" / dataset / "x.npy").unlink()
    assert run_job(job_id, backend.settings) == "failed"
    log = api.get(f"/v1/jobs/{job_id}/logs").text
    assert f"job {job_id} failed" in log and "Traceback (most recent call last)" in log and "x.npy" in log
    with backend.client() as other:
        assert_error(other.get(f"/v1/jobs/{job_id}/logs"), 404, "job_not_found")
