"""Finding and comparing runs (API 1.2): GET /v1/jobs filtered by method, sweep and standalone, each
succeeded job with the summary of its stored metrics. Jobs run in-process with run_job."""
from __future__ import annotations

import pytest

from deepclust.app.core import results
from deepclust.app.core.db import engine_for, new_session
from deepclust.worker.run import run_job

from ..conftest import blobs, npy_bytes, upload


@pytest.fixture
def runs(api, backend):
    """On labelled blobs: a kmeans sweep over K=2,3 (one seed), a standalone kmeans job and a
    standalone queued dec job; and a standalone kmeans job on an unlabelled dataset."""
    X, y = blobs(90, 6, 3)
    labelled = upload(api, "blobs.npy", npy_bytes(X), labels=("y.txt", "\n".join(map(str, y)).encode())).json()["id"]
    unlabelled = upload(api, "nolabels.npy", npy_bytes(X)).json()["id"]
    sweep = api.post("/v1/sweeps", json={"dataset_id": labelled, "method": "kmeans", "n_clusters": [2, 3],
                                         "seeds": [0], "selection": "input_silhouette"}).json()
    alone = api.post("/v1/jobs", json={"dataset_id": labelled, "method": "kmeans", "n_clusters": 3}).json()
    bare = api.post("/v1/jobs", json={"dataset_id": unlabelled, "method": "kmeans", "n_clusters": 3}).json()
    queued = api.post("/v1/jobs", json={"dataset_id": labelled, "method": "dec", "n_clusters": 3,
                                        "pretrain": {"epochs": 1}}).json()
    for job_id in [*sweep["job_ids"], alone["id"], bare["id"]]:
        assert run_job(job_id, backend.settings)
    return {"sweep": sweep, "alone": alone["id"], "bare": bare["id"], "queued": queued["id"],
            "labelled": labelled}


def ids(api, **params) -> set[str]:
    page = api.get("/v1/jobs", params=params)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == len(body["items"])
    return {j["id"] for j in body["items"]}


def test_filters_by_method_sweep_and_standalone(api, runs):
    children = set(runs["sweep"]["job_ids"])
    standalone = {runs["alone"], runs["bare"], runs["queued"]}
    assert ids(api) == children | standalone
    assert ids(api, standalone="true") == standalone
    assert ids(api, standalone="false") == children
    assert ids(api, sweep_id=runs["sweep"]["id"]) == children
    assert ids(api, sweep_id="swp_unknown") == set()
    assert ids(api, method="dec") == {runs["queued"]}
    assert ids(api, method="kmeans", standalone="true") == {runs["alone"], runs["bare"]}
    assert ids(api, method="kmeans", dataset_id=runs["labelled"], status="succeeded") == children | {runs["alone"]}
    assert api.get("/v1/jobs", params={"standalone": "maybe"}).status_code == 400
    assert api.get("/v1/jobs", params={"standalone": "true", "limit": 1}).json()["total"] == 3


def test_each_listed_job_carries_its_stored_metrics_summary(api, backend, runs):
    listed = {j["id"]: j for j in api.get("/v1/jobs").json()["items"]}
    assert listed[runs["queued"]]["metrics"] is None
    with new_session(engine_for(backend.settings.database_url)) as session:
        for job_id in [*runs["sweep"]["job_ids"], runs["alone"], runs["bare"]]:
            stored = results.metrics(session, job_id)
            summary = listed[job_id]["metrics"]
            assert summary["silhouette"] == stored.internal["silhouette"]
            assert summary["nonempty_clusters"] == sum(1 for n in stored.cluster_sizes if n > 0)
            if job_id == runs["bare"]:  # no labels: no acc/nmi keys at all
                assert set(summary) == {"silhouette", "nonempty_clusters"}
            else:
                assert (summary["acc"], summary["nmi"]) == (stored.external["acc"], stored.external["nmi"])
    assert listed[runs["alone"]]["metrics"]["acc"] == 1.0
    assert listed[runs["alone"]]["metrics"]["nonempty_clusters"] == 3
    # the job resource itself is unchanged but for the field; the full metrics stay at /metrics
    one = api.get(f"/v1/jobs/{runs['alone']}").json()
    assert {k: v for k, v in one.items() if k != "metrics"} == {
        k: v for k, v in listed[runs["alone"]].items() if k != "metrics"}
