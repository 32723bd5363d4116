"""Job creation, validation, listing and cancel through the API (no worker runs here: jobs stay queued)."""
from __future__ import annotations

import pytest

from deepclust.models import list_methods

from ..conftest import TINY_DEC, blobs, npy_bytes, upload
from ..http.test_bad_input import assert_error


@pytest.fixture
def dataset(api) -> str:
    X, _ = blobs(60, 4)
    return upload(api, "blobs.npy", npy_bytes(X)).json()["id"]


def job_body(dataset: str, **changes) -> dict:
    return {"dataset_id": dataset, "method": "dec", "n_clusters": 3, **TINY_DEC, **changes}


def test_methods_lists_every_registered_method_with_schema(api):
    body = api.get("/v1/methods").json()
    names = {m["name"] for m in body["items"]}
    assert names == {m.name for m in list_methods()} and {"kmeans", "dec", "idec"} <= names
    dec = next(m for m in body["items"] if m["name"] == "dec")
    assert "features" in dec["input_kinds"]
    assert "maxiter" in dec["params_schema"]["properties"] and dec["defaults"]["maxiter"] == 20_000


def test_methods_show_pretraining_as_its_own_schema(api):
    methods = {m["name"]: m for m in api.get("/v1/methods").json()["items"]}
    dec = methods["dec"]
    assert not [k for k in dec["params_schema"]["properties"] if k.startswith("pretrain")]
    assert not [k for k in dec["defaults"] if k.startswith("pretrain")]
    assert dec["pretrain_defaults"]["epochs"] == 200 and dec["pretrain_defaults"]["batch_size"] == 256
    epochs = dec["pretrain_schema"]["properties"]["epochs"]
    assert (epochs["type"], epochs["minimum"], epochs["default"]) == ("integer", 0, 200)
    assert dec["pretrain_schema"]["additionalProperties"] is False
    assert methods["kmeans"]["pretrain_schema"] is None and methods["kmeans"]["pretrain_defaults"] is None


@pytest.mark.parametrize("change, param, says", [
    ({"params": {"pretrain_epochs": 3}, "pretrain": None}, "pretrain_epochs", '"pretrain": {"epochs": 3}'),
    ({"pretrain": {"epoch": 3}}, "pretrain.epoch", "unknown pretraining setting; allowed: epochs, batch_size"),
    ({"pretrain": {"epochs": -1}}, "pretrain.epochs", "greater than or equal to 0"),
    ({"params": {"epochs": 3}}, "epochs", "unknown parameter; allowed: hidden_dims"),
])
def test_pretraining_has_one_place_and_errors_say_where(api, dataset, change, param, says):
    error = assert_error(api.post("/v1/jobs", json=job_body(dataset, **change)), 422, "invalid_params")
    assert error["details"]["errors"][0]["param"] == param and says in error["details"]["errors"][0]["message"]
    assert says in error["message"] or param in error["message"]
    if param.startswith("pretrain."):
        assert "pretrain_" not in error["details"]["errors"][0]["message"]


def test_create_job_answers_202_with_location_and_full_params(api, dataset):
    r = api.post("/v1/jobs", json=job_body(dataset, name="first", seed=7))
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["phase"] is None and job["attempts"] == 0
    assert job["progress"]["fraction"] == 0.0 and job["model_id"] is None and job["error"] is None
    assert job["pretrain"]["epochs"] == 2 and job["pretrain"]["optimizer"] == "adam"  # defaults filled in
    assert job["params"]["embedding_dim"] == 5 and "pretrain_epochs" not in job["params"]
    assert job["params"]["lr"] == 0.01  # defaults filled in
    assert (job["name"], job["seed"], job["device"]) == ("first", 7, "auto")
    assert api.get(f"/v1/jobs/{job['id']}").json() == job


@pytest.mark.parametrize("change, code", [
    ({"method": "spectral"}, "unknown_method"),
    ({"n_clusters": 1}, "invalid_n_clusters"),
    ({"n_clusters": 61}, "invalid_n_clusters"),
    ({"params": {"nonsense": 1}}, "invalid_params"),
    ({"params": {"maxiter": -5}}, "invalid_params"),
    ({"params": {"pretrain_epochs": 3}, "pretrain": {"epochs": 2}}, "invalid_params"),
    ({"params": {"pretrain_epochs": 3}}, "invalid_params"),
    ({"method": "kmeans", "params": {}, "pretrain": {"epochs": 2}}, "invalid_params"),
    ({"device": "tpu"}, "invalid_request"),
    ({"device": "cuda:99999999999"}, "invalid_request"),
    ({"device": "cuda:128"}, "invalid_request"),
    ({"unexpected": True}, "invalid_request"),
    ({"n_clusters": "three"}, "invalid_request"),
])
def test_invalid_jobs_are_refused_with_422(api, dataset, change, code):
    error = assert_error(api.post("/v1/jobs", json=job_body(dataset, **change)), 422, code)
    if code == "invalid_params":
        assert error["details"]["errors"][0]["param"]
    assert api.get("/v1/jobs").json()["total"] == 0


def test_list_filters_and_paginates(api, dataset):
    other = upload(api, "other.npy", npy_bytes(blobs(30, 4)[0])).json()["id"]
    ids = [api.post("/v1/jobs", json=job_body(dataset)).json()["id"] for _ in range(3)]
    api.post("/v1/jobs", json=job_body(other))
    assert api.get("/v1/jobs").json()["total"] == 4
    mine = api.get("/v1/jobs", params={"dataset_id": dataset, "limit": 2}).json()
    assert mine["total"] == 3 and len(mine["items"]) == 2 and {j["id"] for j in mine["items"]} <= set(ids)
    assert api.get("/v1/jobs", params={"status": "queued"}).json()["total"] == 4
    assert api.get("/v1/jobs", params={"status": "running"}).json()["total"] == 0


def test_cancel_queued_job_at_once_and_state_conflicts(api, dataset):
    job = api.post("/v1/jobs", json=job_body(dataset)).json()
    # Results and deletion wait for the job.
    for suffix in ("labels", "centroids", "metrics"):
        assert_error(api.get(f"/v1/jobs/{job['id']}/{suffix}"), 409, "job_not_succeeded")
    assert_error(api.delete(f"/v1/datasets/{dataset}"), 409, "dataset_in_use")
    assert_error(api.post("/v1/jobs", json=job_body(dataset, pretrained_from=job["id"])), 409, "job_not_succeeded")

    r = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    assert_error(api.post(f"/v1/jobs/{job['id']}/cancel"), 409, "job_finished")
    assert api.get(f"/v1/jobs/{job['id']}/history").json() == []
    assert api.delete(f"/v1/datasets/{dataset}").status_code == 204
