"""CDC and DCCF through the service, as a user would reach them: listed with their paper defaults,
trained by the real worker, every loss term in the history, predictions that match the stored labels."""
from __future__ import annotations

import pytest

from deepclust.worker.run import run_job

from ..conftest import blobs, npy_bytes, upload

N, D, K = 90, 8, 3
NET = {"hidden_dims": [16, 16], "embedding_dim": 4, "kmeans_n_init": 3}
JOBS = {
    "cdc": {"params": {**NET, "maxiter": 40, "update_interval": 10, "batch_size": 32},
            "pretrain": {"epochs": 2, "batch_size": 32}},
    "dccf": {"params": {**NET, "max_epochs": 4, "batch_size": 32, "contractive_in_pretrain": True},
             "pretrain": {"epochs": 2, "batch_size": 32}},
}
# The terms each phase must log (Trinh & Pham eq. 7, 13; Cai et al. 2022 eq. 7, 14; docs/methods.md),
# beside the total "loss".
TERMS = {
    "cdc": ({"reconstruction", "corr_embedding", "corr_output"}, {"kl", "affinity", "corr_embedding", "corr_output"}),
    "dccf": ({"reconstruction", "contractive"}, {"reconstruction", "contractive", "kl", "focal"}),
}


def test_methods_list_the_paper_methods_with_their_defaults_and_ranges(api):
    methods = {m["name"]: m for m in api.get("/v1/methods").json()["items"]}
    cdc, dccf = methods["cdc"], methods["dccf"]
    assert (cdc["defaults"]["variant"], cdc["defaults"]["corr_weight"], cdc["defaults"]["affinity_weight"],
            cdc["defaults"]["maxiter"], cdc["defaults"]["update_interval"]) == ("code", 1e-3, 0.75, 5000, 50)
    assert (dccf["defaults"]["contractive_weight"], dccf["defaults"]["clustering_weight"], dccf["defaults"]["focal"],
            dccf["defaults"]["jacobian"], dccf["defaults"]["tol"], dccf["defaults"]["max_epochs"]) == (
        1e-7, 0.1, "hard", "exact", 0.001, 200)
    schema = dccf["params_schema"]["properties"]
    assert schema["clustering_weight"]["minimum"] == 0 and "maximum" in schema["clustering_weight"]
    assert set(schema["focal"]["enum"]) == {"hard", "soft", "categorical", "none"}


@pytest.fixture(scope="module", params=sorted(JOBS))
def trained(request, backend):
    method = request.param
    X, y = blobs(N, D, K)
    with backend.client() as api:
        dataset = upload(api, "blobs.npy", npy_bytes(X), labels=("y.txt", "\n".join(map(str, y)).encode())).json()
        r = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": method, "n_clusters": K, **JOBS[method]})
        assert r.status_code == 202, r.text
        assert run_job(r.json()["id"], backend.settings) == "succeeded"
        yield method, api, api.get(f"/v1/jobs/{r.json()['id']}").json(), X


def test_history_carries_each_loss_term(trained):
    method, api, job, _ = trained
    rows = api.get(f"/v1/jobs/{job['id']}/history").json()
    pretrain_terms, finetune_terms = TERMS[method]
    pretrain = [r for r in rows if r["phase"] == "pretrain"]
    finetune = [r for r in rows if r["phase"] == "finetune"]
    assert [r["epoch"] for r in pretrain] == [0, 1]
    assert all(pretrain_terms | {"loss"} <= set(r) for r in pretrain), pretrain[0]
    assert finetune and all(finetune_terms | {"loss", "acc", "nmi"} <= set(r) for r in finetune), finetune[0]
    assert all(r[t] >= 0 for r in finetune for t in finetune_terms)
    if method == "dccf":  # the loss is the sum the paper writes, with its default weights
        r = finetune[-1]
        total = r["reconstruction"] + 1e-7 * r["contractive"] + 0.1 * (r["kl"] + r["focal"])
        assert r["loss"] == pytest.approx(total, rel=1e-4)


def test_predict_gives_the_stored_labels(trained):
    _, api, job, X = trained
    stored = [item["label"] for item in api.get(f"/v1/jobs/{job['id']}/labels", params={"limit": N}).json()["items"]]
    r = api.post(f"/v1/models/{job['model_id']}/predict", json={"instances": X.tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == stored
    metrics = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert metrics["external"]["acc"] >= 0.9  # three blobs six standard deviations apart
