"""Sweeps through the API on a real database: the grid of jobs, one pretraining per seed, the
label-free recommendation, cancel, validation. Jobs run in-process with run_job, as a worker would."""
from __future__ import annotations

import pytest

from deepclust.app.core import sweepstate
from deepclust.app.core.db import engine_for, new_session
from deepclust.app.core.dispatch import LocalDispatcher
from deepclust.app.jobs.reaper import reap_once
from deepclust.models import selection
from deepclust.worker.run import run_job

from ..conftest import TINY_DEC, blobs, npy_bytes, upload

CRITERIA = set(selection.CRITERIA)


@pytest.fixture
def three_blobs(api):
    """Three well-separated blobs, with labels (used only to report acc/nmi)."""
    X, y = blobs(150, 8, 3)
    return upload(api, "blobs.npy", npy_bytes(X), labels=("y.txt", "\n".join(map(str, y)).encode())).json()["id"]


def sweep_body(dataset_id: str, **changes) -> dict:
    return {"dataset_id": dataset_id, "method": "dec", **TINY_DEC, "n_clusters": [2, 3, 4, 5], "seeds": [0, 1],
            **changes}


def run_all(api, sweep: dict, backend) -> dict:
    """Run the sweep's jobs as workers would: each runnable one, until none is left."""
    for _ in range(len(sweep["job_ids"]) + 1):
        states = {j: api.get(f"/v1/jobs/{j}").json()["status"] for j in sweep["job_ids"]}
        queued = [j for j, s in states.items() if s == "queued"]
        if not queued:
            break
        ran = [run_job(j, backend.settings) for j in queued]  # a held job is not claimed: None
        assert any(ran), f"no job of {queued} could run"
    return api.get(f"/v1/sweeps/{sweep['id']}").json()


def test_a_sweep_recommends_the_true_k_and_pretrains_once_per_seed(api, backend, three_blobs):
    response = api.post("/v1/sweeps", json=sweep_body(three_blobs))
    assert response.status_code == 202, response.text
    sweep = response.json()
    assert response.headers["Location"] == f"/v1/sweeps/{sweep['id']}"
    assert sweep["status"] == "queued" and sweep["result"] is None and len(sweep["job_ids"]) == 8
    assert sweep["pretrain"]["epochs"] == TINY_DEC["pretrain"]["epochs"]
    assert not any(name.startswith("pretrain_") for name in sweep["params"])
    assert sweep["progress"] == {"fraction": 0.0, "total": 8, "queued": 8, "running": 0, "succeeded": 0,
                                 "failed": 0, "cancelled": 0}
    jobs = [api.get(f"/v1/jobs/{j}").json() for j in sweep["job_ids"]]
    assert [(j["n_clusters"], j["seed"]) for j in jobs] == [(k, s) for k in (2, 3, 4, 5) for s in (0, 1)]
    # each seed's first K pretrains; its other K's reuse that autoencoder
    first = {j["seed"]: j["id"] for j in jobs if j["n_clusters"] == 2}
    for job in jobs:
        assert job["pretrained_from"] == (None if job["n_clusters"] == 2 else first[job["seed"]])
    # they are ordinary jobs: listed with the others
    listed = {j["id"] for j in api.get("/v1/jobs", params={"dataset_id": three_blobs}).json()["items"]}
    assert listed == set(sweep["job_ids"])

    done = run_all(api, sweep, backend)
    assert done["status"] == "succeeded", done
    assert done["progress"]["succeeded"] == 8 and done["progress"]["fraction"] == 1.0
    result = done["result"]
    assert result["recommended"]["n_clusters"] == 3
    chosen = api.get(f"/v1/jobs/{result['recommended']['job_id']}").json()
    assert chosen["n_clusters"] == 3 and result["recommended"]["model_id"] == chosen["model_id"]
    assert [(r["n_clusters"], r["seed"], r["job_id"]) for r in result["table"]] == [
        (j["n_clusters"], j["seed"], j["id"]) for j in jobs]
    for row in result["table"]:
        assert CRITERIA | {"n_clusters", "seed", "job_id", "selected", "acc", "nmi", "ari"} == set(row)
        assert row["selected"] == (row["job_id"] == chosen["id"])
        assert isinstance(row["stability"], float) and isinstance(row["input_silhouette"], float)
    assert [r["acc"] for r in result["table"] if r["n_clusters"] == 3] == [1.0, 1.0]
    for job in jobs:
        phases = {r["phase"] for r in api.get(f"/v1/jobs/{job['id']}/history").json()}
        assert ("pretrain" in phases) == (job["n_clusters"] == 2), job

    png = api.get(f"/v1/sweeps/{sweep['id']}/plot.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    page = api.get("/v1/sweeps").json()
    assert page["total"] == 1 and page["items"][0]["id"] == sweep["id"]


def test_without_labels_the_table_has_no_external_metrics(api, backend):
    X, _ = blobs(90, 6, 3, seed=1)
    dataset = upload(api, "nolabels.npy", npy_bytes(X)).json()["id"]
    sweep = api.post("/v1/sweeps", json=sweep_body(dataset, method="kmeans", params={}, pretrain=None,
                                                   n_clusters={"min": 2, "max": 4},
                                                   selection="input_silhouette", seeds=[0])).json()
    assert [api.get(f"/v1/jobs/{j}").json()["pretrained_from"] for j in sweep["job_ids"]] == [None] * 3
    done = run_all(api, sweep, backend)
    assert done["status"] == "succeeded" and done["result"]["recommended"]["n_clusters"] == 3
    for row in done["result"]["table"]:
        assert not {"acc", "nmi", "ari"} & set(row) and row["stability"] is None


def test_cancelling_the_sweep_cancels_its_jobs(api, backend, three_blobs):
    sweep = api.post("/v1/sweeps", json=sweep_body(three_blobs, n_clusters=[2, 3])).json()
    with new_session(engine_for(backend.settings.database_url)) as session:  # one job is running
        from deepclust.app.core import jobstate
        running = jobstate.claim(session, sweep["job_ids"][0], "test-worker")

    response = api.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "running"  # its running job stops at its next epoch
    states = {j: api.get(f"/v1/jobs/{j}").json()["status"] for j in sweep["job_ids"]}
    assert states == {j: ("running" if j == running.id else "cancelled") for j in sweep["job_ids"]}

    # the worker sees the flag at its next epoch and ends the job; the sweep is then cancelled
    with new_session(engine_for(backend.settings.database_url)) as session:
        assert jobstate.finish(session, running.id, running.attempts, "cancelled")
        sweepstate.after_job(session, None, LocalDispatcher(), running.id)
    done = api.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "cancelled" and done["result"] is None and done["finished_at"]
    assert done["progress"]["cancelled"] == 4
    assert api.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 409
    assert api.get(f"/v1/sweeps/{sweep['id']}/plot.png").status_code == 409


def test_a_queued_sweep_is_cancelled_at_once(api, three_blobs):
    sweep = api.post("/v1/sweeps", json=sweep_body(three_blobs, n_clusters=[2, 3])).json()
    cancelled = api.post(f"/v1/sweeps/{sweep['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["cancelled"] == 4
    assert {api.get(f"/v1/jobs/{j}").json()["status"] for j in sweep["job_ids"]} == {"cancelled"}


def test_a_cancelled_source_frees_its_held_jobs_to_pretrain_themselves(api, backend, three_blobs):
    sweep = api.post("/v1/sweeps", json=sweep_body(three_blobs, n_clusters=[2, 3])).json()
    jobs = {(j["n_clusters"], j["seed"]): j for j in (api.get(f"/v1/jobs/{i}").json() for i in sweep["job_ids"])}
    held = jobs[(3, 0)]["id"]
    assert run_job(held, backend.settings) is None  # held: not claimable while its source is queued
    api.post(f"/v1/jobs/{jobs[(2, 0)]['id']}/cancel")  # the user cancels one job of the sweep

    reap_once(engine_for(backend.settings.database_url), backend.settings, LocalDispatcher())
    freed = api.get(f"/v1/jobs/{held}").json()
    assert freed["status"] == "queued" and freed["pretrained_from"] is None
    done = run_all(api, sweep, backend)
    assert {(r["phase"]) for r in api.get(f"/v1/jobs/{held}/history").json()} >= {"pretrain", "finetune"}
    # K=2 has one run left (no stability); K=3 has two, so the sweep still chooses
    assert done["status"] == "succeeded" and done["progress"]["cancelled"] == 1
    assert [(r["n_clusters"], r["seed"]) for r in done["result"]["table"]] == [(2, 1), (3, 0), (3, 1)]
    assert done["result"]["recommended"]["n_clusters"] == 3


def test_a_sweep_that_cannot_choose_fails_with_its_reason(api, backend, three_blobs):
    sweep = api.post("/v1/sweeps", json=sweep_body(three_blobs, n_clusters=[2, 3], selection="stability")).json()
    jobs = [api.get(f"/v1/jobs/{i}").json() for i in sweep["job_ids"]]
    for job in jobs:  # every seed 1 run is cancelled: one run per K, no stability
        if job["seed"] == 1:
            api.post(f"/v1/jobs/{job['id']}/cancel")
    done = run_all(api, sweep, backend)
    assert done["status"] == "failed" and done["result"] is None
    assert done["error"]["code"] == "selection_impossible" and "two runs per K" in done["error"]["message"]


@pytest.mark.parametrize("changes, code", [
    ({"seeds": [0], "selection": "stability"}, "invalid_selection"),
    ({"n_clusters": [2, 500]}, "invalid_n_clusters"),
    ({"n_clusters": [1, 3]}, "invalid_n_clusters"),
    ({"n_clusters": {"min": 5, "max": 3}}, "invalid_n_clusters"),
    ({"n_clusters": [3, 3]}, "invalid_grid"),
    ({"n_clusters": {"min": 2, "max": 150}, "n_restarts": 3, "seeds": None}, "grid_too_large"),
    ({"selection": "acc"}, "invalid_selection"),
    ({"method": "nope"}, "unknown_method"),
    ({"params": {"gamma_typo": 1}}, "invalid_params"),
    ({"n_restarts": 3}, "invalid_request"),
    ({"seeds": [-1, 0]}, "invalid_request"),
    ({"n_clusters": "ten"}, "invalid_request"),
    ({"device": "cuda:99999999999"}, "invalid_request"),  # was accepted, and every job failed in the worker
    ({"device": "tpu"}, "invalid_request"),
])
def test_bad_sweeps_are_refused_with_nothing_created(api, three_blobs, changes, code):
    response = api.post("/v1/sweeps", json=sweep_body(three_blobs, **changes))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert api.get("/v1/sweeps").json()["total"] == 0
    assert api.get("/v1/jobs").json()["total"] == 0


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:127"])
def test_sweeps_take_the_devices_jobs_take(api, three_blobs, device):
    response = api.post("/v1/sweeps", json=sweep_body(three_blobs, device=device))
    assert response.status_code == 202, response.text
    assert {job["device"] for job in api.get("/v1/jobs").json()["items"]} == {device}


def test_a_sweeps_jobs_name_their_sweep(api, three_blobs):
    sweep = api.post("/v1/sweeps", json=sweep_body(three_blobs)).json()
    alone = api.post("/v1/jobs", json={"dataset_id": three_blobs, "method": "dec", "n_clusters": 3, **TINY_DEC}).json()
    assert alone["sweep_id"] is None
    listed = {job["id"]: job["sweep_id"] for job in api.get("/v1/jobs").json()["items"]}
    assert listed == {**{job_id: sweep["id"] for job_id in sweep["job_ids"]}, alone["id"]: None}
    child = sweep["job_ids"][0]
    assert api.get(f"/v1/jobs/{child}").json()["sweep_id"] == sweep["id"]
    assert api.post(f"/v1/jobs/{child}/cancel").json()["sweep_id"] == sweep["id"]
    assert api.get(f"/v1/jobs/{alone['id']}").json()["sweep_id"] is None


def test_another_tenants_sweep_is_not_found(api, backend, three_blobs):
    sweep = api.post("/v1/sweeps", json=sweep_body(three_blobs, n_clusters=[2, 3])).json()
    with backend.client() as other:
        for method, path in [("get", ""), ("post", "/cancel"), ("get", "/plot.png")]:
            response = getattr(other, method)(f"/v1/sweeps/{sweep['id']}{path}")
            assert response.status_code == 404 and response.json()["error"]["code"] == "sweep_not_found"
        assert other.get("/v1/sweeps").json()["total"] == 0
        assert other.post("/v1/sweeps", json=sweep_body(three_blobs)).status_code == 404
    assert api.get(f"/v1/sweeps/{sweep['id']}/plot.png").status_code == 409
    # leave no queued job behind for the tests that run a real runner on this database
    assert api.post(f"/v1/sweeps/{sweep['id']}/cancel").json()["status"] == "cancelled"


def test_a_grid_is_counted_by_arithmetic_and_its_errors_stay_small(api, three_blobs):
    """`{"min": 2, "max": 1000000000}` once built the whole range before the 200-job limit (the
    server grew to 22.8 GB); `"max": 2000000` answered a 31.8 MB 422 listing every bad K."""
    for top in (2_000_000, 1_000_000_000, 2**62):  # the first one first: before the fix it only costs 100 MB
        response = api.post("/v1/sweeps", json=sweep_body(three_blobs, n_clusters={"min": 2, "max": top}))
        assert response.status_code == 422 and len(response.content) < 2000, response.text[:500]
        assert response.json()["error"]["code"] == "grid_too_large"
        assert response.json()["error"]["details"]["jobs"] == (top - 1) * 2
    # Too many bad K's in a grid that is not too large: a few are shown, with their count.
    response = api.post("/v1/sweeps", json=sweep_body(three_blobs, n_clusters=list(range(1000, 1100)), seeds=[0]))
    assert response.status_code == 422 and len(response.content) < 2000, response.text[:500]
    error = response.json()["error"]
    assert error["code"] == "invalid_n_clusters" and error["details"]["n_invalid"] == 100
    assert len(error["details"]["n_clusters"]) == 10 and "(100 in all)" in error["message"]
    # A body whose every field error would be listed: the list is bounded too.
    response = api.post("/v1/sweeps", json=sweep_body(three_blobs, n_clusters=["x"] * 5000))
    assert response.status_code == 422 and len(response.content) < 20_000, len(response.content)
    assert len(response.json()["error"]["details"]["errors"]) <= 20
    assert api.get("/v1/sweeps").json()["total"] == 0


def test_sweeps_choose_k_by_stadion_and_keep_seed_agreement_as_reproducibility(api, backend, three_blobs):
    sweep = api.post("/v1/sweeps", json=sweep_body(three_blobs, n_clusters=[2, 3, 4])).json()
    assert sweep["selection"] == "stadion"  # the default (API 1.2)
    done = run_all(api, sweep, backend)
    assert done["status"] == "succeeded", done
    table = done["result"]["table"]
    assert all(row["stadion"] is not None and "stability" in row for row in table)
    assert done["result"]["recommended"]["n_clusters"] == 3
