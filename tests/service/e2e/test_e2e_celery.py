"""The same journey on the production shape: PostgreSQL, Redis, `deepclust serve` with the Celery
dispatcher and a real `deepclust worker` (a Celery worker) in subprocesses. A private PostgreSQL
schema, Redis database and queue name keep parallel runs apart."""
from __future__ import annotations

import io
import random
import signal
import subprocess
import uuid

import numpy as np
import pytest
import redis

from ..conftest import REDIS_URL, PostgresSchema, digits

pytestmark = pytest.mark.needs("postgresql", "redis")
from ..journey import kill_mid_pretraining, run_journey
from ..processes import DEEPCLUST, Program, clean_env, start_server

N = 1000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("celery")
    schema = PostgresSchema()
    broker = f"{REDIS_URL}/{random.randint(1, 15)}"
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = clean_env(database_url=schema.url, dispatcher="celery", broker_url=broker, queue=queue,
                    data_dir=tmp / "data", progress_interval_seconds=0.2, heartbeat_seconds=1,
                    checkpoint_interval_seconds=0, stale_after_seconds=10, reaper_interval_seconds=1,
                    retry_backoff_seconds=1)
    programs = []
    try:
        migrate = subprocess.run([DEEPCLUST, "migrate"], env=env, cwd=tmp, capture_output=True, text=True)
        assert migrate.returncode == 0, migrate.stderr
        worker = Program([DEEPCLUST, "worker"], env, tmp, tmp / "worker.log")
        programs.append(worker)
        server, client = start_server(tmp, env)
        programs.append(server)
        yield client, worker, schema, tmp
        client.close()
    finally:
        for program in reversed(programs):
            program.stop(signal.SIGTERM if program is programs[0] else signal.SIGINT)
        schema.drop()
        r = redis.Redis.from_url(broker)
        r.delete(*r.keys(f"*{queue}*") or ["-"])
        r.close()


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
