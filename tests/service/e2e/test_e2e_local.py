"""End to end on the embedded default, as a user: `deepclust serve` (SQLite under ./data, local
runner, auth off on 127.0.0.1) in a subprocess, driven over HTTP."""
from __future__ import annotations

import io

import numpy as np
import pytest

from ..conftest import digits
from ..journey import kill_mid_pretraining, run_journey, train_dec
from ..processes import clean_env, start_server, wait_for_job, wait_until

N = 1000


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("embedded")
    env = clean_env(progress_interval_seconds=0.2, heartbeat_seconds=1, checkpoint_interval_seconds=0)
    server, client = start_server(tmp, env)
    X, y = digits(N)
    try:
        yield server, client, tmp, X, y
    finally:
        client.close()
        server.stop()


@pytest.fixture(scope="module")
def dataset_id(local) -> str:
    """A smaller slice for the cancel and crash tests, which need time between epochs, not accuracy."""
    _, client, _, X, _ = local
    buffer = io.BytesIO()
    np.save(buffer, X[:300])
    return client.post("/v1/datasets", files={"file": ("digits300.npy", buffer.getvalue())}).json()["id"]


def test_serve_prints_where_the_api_and_docs_are(local):
    server, client, tmp, _, _ = local
    port = client.base_url.port
    assert f"http://127.0.0.1:{port}/docs" in server.output()
    assert (tmp / "data" / "deepclust.db").exists()  # the embedded default, migrated by serve itself
    assert client.get("/v1/datasets").status_code == 200  # no key needed on 127.0.0.1


def test_user_journey(local):
    _, client, tmp, X, y = local
    buffer = io.BytesIO()
    np.save(buffer, X)
    files = {"file": ("digits.npy", buffer.getvalue()), "labels": ("labels.txt", "\n".join(map(str, y)).encode())}
    job = run_journey(client, files, X, y, predict_file=False)
    history = client.get(f"/v1/jobs/{job['id']}/history").json()
    assert {"pretrain", "finetune"} == {row["phase"] for row in history}
    assert not list((tmp / "data" / "artifacts" / "checkpoints").glob("*"))  # gone once the job is done


def test_cancel_running_job_within_an_epoch_and_queued_job_at_once(local, dataset_id):
    _, client, _, _, _ = local
    long = train_dec(client, dataset_id, pretrain={"epochs": 500, "batch_size": 64})
    wait_until(lambda: client.get(f"/v1/jobs/{long['id']}").json()["progress"]["epoch"], 300,
               "the long job to finish an epoch")
    waiting = train_dec(client, dataset_id)  # the runner is busy: this one stays queued

    r = client.post(f"/v1/jobs/{waiting['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"

    r = client.post(f"/v1/jobs/{long['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "running"  # stops at its next epoch boundary
    job = wait_for_job(client, long["id"], {"cancelled", "succeeded", "failed"}, timeout=120)
    assert job["status"] == "cancelled" and job["phase"] == "pretrain" and job["model_id"] is None
    epochs = [row["epoch"] for row in client.get(f"/v1/jobs/{long['id']}/history").json()]
    assert epochs == list(range(len(epochs))) and len(epochs) < 500
    assert client.get(f"/v1/jobs/{waiting['id']}").json()["attempts"] == 0


def test_killed_worker_process_is_retried_from_its_checkpoint(local, dataset_id):
    server, client, tmp, _, _ = local
    job = kill_mid_pretraining(client, dataset_id, f"sqlite:///{tmp / 'data' / 'deepclust.db'}")
    assert f"job {job['id']}: resuming from its checkpoint" in server.output()
    assert not (tmp / "data" / "artifacts" / "checkpoints" / f"{job['id']}.pt").exists()
