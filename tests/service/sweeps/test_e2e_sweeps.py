"""A sweep on the embedded default (`deepclust serve`, local runner) over HTTP: a job whose worker
process is killed mid-pretraining is retried from its checkpoint like any job, the jobs held for
its autoencoder wait for it, and the sweep still ends with its recommendation."""
from __future__ import annotations

import io
import os
import signal

import numpy as np
import pytest

from ..conftest import blobs
from ..journey import LONG_PRETRAIN, job_owner
from ..processes import clean_env, start_server, wait_until

# Long enough that a job is still pretraining when the test gets round to killing it.
PRETRAIN_EPOCHS = LONG_PRETRAIN["epochs"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweeps-embedded")
    env = clean_env(progress_interval_seconds=0.2, heartbeat_seconds=1, checkpoint_interval_seconds=0)
    server, client = start_server(tmp, env)
    try:
        yield server, client, tmp
    finally:
        client.close()
        server.stop()


def test_a_killed_sweep_job_resumes_and_the_sweep_completes(served):
    server, client, tmp = served
    X, y = blobs(300, 8, 3)
    buffer = io.BytesIO()
    np.save(buffer, X)
    files = {"file": ("blobs.npy", buffer.getvalue()), "labels": ("y.txt", "\n".join(map(str, y)).encode())}
    dataset = client.post("/v1/datasets", files=files).json()["id"]
    body = {"dataset_id": dataset, "method": "dec", "n_clusters": [2, 3], "seeds": [0, 1],
            "params": {"hidden_dims": [32, 32], "embedding_dim": 5, "maxiter": 60, "update_interval": 20,
                       "batch_size": 64, "kmeans_n_init": 3},
            "pretrain": LONG_PRETRAIN}
    r = client.post("/v1/sweeps", json=body)
    assert r.status_code == 202, r.text
    sweep = r.json()

    def a_source_in_pretraining():
        for job_id in sweep["job_ids"]:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] == "running" and job["phase"] == "pretrain" and (job["progress"]["epoch"] or 0) >= 2:
                return job
        return None

    victim = wait_until(a_source_in_pretraining, 300, "a sweep job to run a few pretraining epochs")
    assert victim["n_clusters"] == 2  # a seed's first K pretrains; the others are held meanwhile
    held = [j for j in (client.get(f"/v1/jobs/{i}").json() for i in sweep["job_ids"])
            if j["pretrained_from"] == victim["id"]]
    assert len(held) == 1 and held[0]["status"] == "queued"
    os.kill(int(job_owner(f"sqlite:///{tmp / 'data' / 'deepclust.db'}", victim["id"]).rsplit(":", 1)[1]),
            signal.SIGKILL)

    def ended():
        state = client.get(f"/v1/sweeps/{sweep['id']}").json()
        return state if state["status"] in {"succeeded", "failed", "cancelled"} else None

    done = wait_until(ended, 600, "the sweep to end", interval=0.5)
    assert done["status"] == "succeeded", done
    assert done["progress"]["succeeded"] == 4
    assert done["result"]["recommended"]["n_clusters"] == 3

    retried = client.get(f"/v1/jobs/{victim['id']}").json()
    assert retried["status"] == "succeeded" and retried["attempts"] == 2
    pretrain = [r["epoch"] for r in client.get(f"/v1/jobs/{victim['id']}/history").json() if r["phase"] == "pretrain"]
    assert pretrain == list(range(PRETRAIN_EPOCHS))  # resumed, not repeated
    assert f"job {victim['id']}: resuming from its checkpoint" in server.output()
    # the held job reused the autoencoder the retried job pretrained
    reuser = client.get(f"/v1/jobs/{held[0]['id']}").json()
    assert reuser["status"] == "succeeded" and reuser["pretrained_from"] == victim["id"]
    assert "pretrain" not in {r["phase"] for r in client.get(f"/v1/jobs/{reuser['id']}/history").json()}
