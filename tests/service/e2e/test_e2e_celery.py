"""The same journey on the production shape: PostgreSQL, Redis, `deepclust serve` with the Celery
dispatcher and a real `deepclust worker` (a Celery worker) in subprocesses. A private PostgreSQL
schema, Redis database and queue name keep parallel runs apart."""
from __future__ import annotations

import io

import numpy as np
import pytest

from ..conftest import digits
from ..journey import kill_mid_pretraining, run_journey
from ..processes import celery_stack

pytestmark = pytest.mark.needs("postgresql", "redis")

N = 1000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with celery_stack(tmp_path_factory.mktemp("celery"), progress_interval_seconds=0.2, heartbeat_seconds=1,
                      checkpoint_interval_seconds=0, stale_after_seconds=10, reaper_interval_seconds=1,
                      retry_backoff_seconds=1) as running:
        yield running.client, running.worker, running.schema, running.tmp


def test_user_journey_on_celery_redis_postgres(stack):
    client, worker, _, tmp = stack
    X, y = digits(N)
    buffer = io.BytesIO()
    np.savez(buffer, x=X, y=y)
    run_journey(client, {"file": ("digits.npz", buffer.getvalue())}, X, y, predict_file=True)
    assert "deepclust.run_job" in worker.output()  # the Celery worker ran it
    assert not list((tmp / "data" / "artifacts" / "checkpoints").glob("*"))  # gone once the job is done


def test_lost_worker_is_reaped_and_the_job_resumes(stack):
    """Kill the pool process running a job: the API's reaper sees the heartbeat go stale, requeues the
    job through the broker, and a fresh pool process resumes it from its checkpoint."""
    client, worker, schema, _ = stack
    X, _ = digits(300)
    buffer = io.BytesIO()
    np.save(buffer, X)
    dataset = client.post("/v1/datasets", files={"file": ("digits300.npy", buffer.getvalue())}).json()["id"]
    job = kill_mid_pretraining(client, dataset, schema.url)
    assert f"job {job['id']}: resuming from its checkpoint" in worker.output()
