"""How a job fails, with real training on tiny generated data: its own failures fail it once with a
code (loss_not_finite, out_of_memory, invalid_input, runtime_exceeded), an unreachable database is
outlasted or retried with a backoff. Outages are real: a lock held by the test makes the worker's
statements fail with PostgreSQL's lock timeout (an OperationalError), nothing is patched."""
from __future__ import annotations

import json
import resource
import threading
import uuid
from datetime import timedelta

import numpy as np
import pytest
import redis
from sqlalchemy import create_engine, text

from deepclust.app.core import jobstate
from deepclust.app.core.db import engine_for, new_session, utcnow
from deepclust.app.core.dispatch import CeleryDispatcher
from deepclust.app.core.joblog import read as read_log
from deepclust.app.core.storage import store_for
from deepclust.app.core.tables import Job
from deepclust.app.jobs.reaper import reap_once
from deepclust.worker.run import run_job

from ..conftest import REDIS_URL, TINY_DEC, artifacts, blobs, npy_bytes, set_job, upload
from ..processes import wait_until


def new_job(api, X: np.ndarray, **overrides) -> str:
    dataset = upload(api, "blobs.npy", npy_bytes(X)).json()["id"]
    body = {"dataset_id": dataset, "method": "dec", "n_clusters": 3, **TINY_DEC, **overrides}
    answer = api.post("/v1/jobs", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def row(backend, job_id: str) -> Job:
    with new_session(engine_for(backend.settings.database_url)) as session:
        return session.get(Job, job_id)


def job_log(backend, job_id: str) -> str:
    return read_log(store_for(backend.data_dir), job_id)


def no_checkpoint(backend, job_id: str) -> bool:
    return not [p for p in artifacts(backend.data_dir) if p.startswith("checkpoints/") and job_id in p]


# -- the job's own failures: failed once, with a code -------------------------------------------------

def test_a_loss_that_overflows_fails_the_job_with_loss_not_finite(api, backend):
    X, _ = blobs(60, 4)
    job_id = new_job(api, X * np.float32(1e20))  # finite in float32, but its squares are not
    assert run_job(job_id, backend.settings) == "failed"
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["attempts"], job["error"]["code"]) == ("failed", 1, "loss_not_finite")
    assert "pretrain epoch 0" in job["error"]["message"] and "learning rate" in job["error"]["message"]
    assert api.get(f"/v1/jobs/{job_id}/history").json() == []  # no NaN row
    assert no_checkpoint(backend, job_id)


def test_a_network_too_large_for_memory_fails_with_out_of_memory(api, backend):
    """A 200000 x 200000 layer (160 GB) cannot be allocated. The API's memory budget refuses such a
    job, so the row is changed after it was accepted; the address-space limit makes the allocation
    fail the same way whatever the machine's overcommit policy."""
    X, _ = blobs(60, 4)
    job_id = new_job(api, X)
    set_job(backend, job_id, params={**row(backend, job_id).params, "hidden_dims": [200_000, 200_000]})
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        vm_size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm_size + (4 << 30), hard))
    try:
        status = run_job(job_id, backend.settings)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert status == "failed"
    error = api.get(f"/v1/jobs/{job_id}").json()["error"]
    assert error["code"] == "out_of_memory"
    assert "batch size" in error["message"] and "hidden_dims" in error["message"]


def test_a_dataset_file_that_is_not_an_array_fails_with_invalid_input(api, backend):
    X, _ = blobs(60, 4)
    job_id = new_job(api, X)
    dataset_id = api.get(f"/v1/jobs/{job_id}").json()["dataset_id"]
    (backend.data_dir / "artifacts" / "datasets" / dataset_id / "x.npy").write_bytes(b"these are not numbers")
    assert run_job(job_id, backend.settings) == "failed"
    error = api.get(f"/v1/jobs/{job_id}").json()["error"]
    assert error["code"] == "invalid_input" and "not a readable .npy file" in error["message"]


@pytest.mark.parametrize("where", ["job", "server default"])
def test_a_job_past_its_runtime_limit_stops_at_an_epoch_and_fails(api, backend, where):
    X, _ = blobs(60, 4)
    long_pretraining = {"pretrain": {"epochs": 10_000, "batch_size": 16}}
    if where == "job":
        job_id, settings = new_job(api, X, max_runtime_s=1, **long_pretraining), backend.settings
        assert api.get(f"/v1/jobs/{job_id}").json()["max_runtime_s"] == 1
    else:
        job_id = new_job(api, X, **long_pretraining)
        settings = backend.settings.model_copy(update={"max_runtime_seconds": 1})
    assert run_job(job_id, settings) == "failed"
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["phase"], job["error"]["code"]) == ("failed", "pretrain", "runtime_exceeded")
    assert "runtime limit of 1 s" in job["error"]["message"] and "max_runtime_s" in job["error"]["message"]
    history = api.get(f"/v1/jobs/{job_id}/history").json()
    assert 1 <= len(history) < 10_000 and [r["epoch"] for r in history] == list(range(len(history)))
    assert no_checkpoint(backend, job_id)


@pytest.mark.parametrize("value", [0, -5, 7 * 24 * 3600 + 1, 1.5, "soon", True])
def test_a_bad_max_runtime_is_refused_with_422(api, value):
    X, _ = blobs(30, 4)
    dataset = upload(api, "blobs.npy", npy_bytes(X)).json()["id"]
    answer = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "kmeans", "n_clusters": 3,
                                        "max_runtime_s": value})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_request" and "max_runtime_s" in error["message"]


def test_a_job_without_a_runtime_limit_shows_none(api):
    X, _ = blobs(30, 4)
    dataset = upload(api, "blobs.npy", npy_bytes(X)).json()["id"]
    job = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "kmeans", "n_clusters": 3}).json()
    assert job["max_runtime_s"] is None


# -- the infrastructure's failures: outlasted, or retried with a backoff --------------------------

LOCK_TIMEOUT = "%20-clock_timeout%3D1000"  # the worker's statements give up after waiting 1 s for a lock


@pytest.fixture
def pg(backend):
    if backend.name != "postgresql":
        pytest.skip("the outage is a PostgreSQL lock timeout")
    admin = create_engine(backend.settings.database_url)
    yield admin
    admin.dispose()


def test_progress_writes_outlast_an_unreachable_database_and_catch_up(api, backend, pg):
    """While every write to the job's row fails, training goes on; the history of those epochs is
    written once the row can be written again, and the attempt never changes."""
    X, _ = blobs(60, 4)
    job_id = new_job(api, X, pretrain={"epochs": 400, "batch_size": 16})
    settings = backend.settings.model_copy(update={"database_url": backend.settings.database_url + LOCK_TIMEOUT,
                                                   "heartbeat_seconds": 0.5})
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(status=run_job(job_id, settings)))
    worker.start()
    try:
        wait_until(lambda: (row(backend, job_id).progress or {}).get("epoch", 0) >= 1, 120, "training to start")
        with pg.connect() as conn:  # hold the job's row: every progress write and heartbeat times out
            conn.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": job_id})
            wait_until(lambda: "the database is unreachable" in job_log(backend, job_id), 120,
                       "the worker to meet the outage")
            epoch_during = row(backend, job_id).progress["epoch"]
            wait_until(lambda: job_log(backend, job_id).count("heartbeat of job") >= 1, 120, "a failed heartbeat")
            conn.rollback()
    finally:
        worker.join(600)
    assert outcome["status"] == "succeeded"
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["attempts"]) == ("succeeded", 1)
    assert "caught up" in job_log(backend, job_id)
    pretrain = [r["epoch"] for r in api.get(f"/v1/jobs/{job_id}/history").json() if r["phase"] == "pretrain"]
    assert pretrain == list(range(400)) and epoch_during < 400  # every epoch once, those of the outage included


@pytest.mark.parametrize("max_attempts", [3, 1])
def test_results_that_cannot_be_stored_requeue_the_job_with_a_backoff(api, backend, pg, max_attempts):
    """The results' tables stay locked past db_retry_seconds: the attempt goes back to the queue,
    its checkpoint kept, and is not sent again before its backoff is over; the next attempt resumes
    and succeeds. With no attempts left the job fails with infrastructure_failed."""
    X, _ = blobs(60, 4)
    job_id = new_job(api, X)
    settings = backend.settings.model_copy(update={
        "database_url": backend.settings.database_url + LOCK_TIMEOUT, "db_retry_seconds": 2,
        "retry_backoff_seconds": 600, "retry_backoff_max_seconds": 600, "checkpoint_interval_seconds": 0,
        "max_attempts": max_attempts})
    with pg.connect() as conn:
        conn.execute(text("LOCK TABLE models IN SHARE MODE"))  # reads go on, the worker's insert waits
        status = run_job(job_id, settings)
        conn.rollback()
    job = row(backend, job_id)
    if max_attempts == 1:
        assert (status, job.status, job.error["code"]) == ("failed", "failed", "infrastructure_failed")
        assert "gave up after 1 attempts" in job.error["message"]
        return
    assert (status, job.status, job.attempts, job.dispatch_pending, job.error) == ("queued", "queued", 1, True, None)
    assert job.not_before > utcnow() + timedelta(seconds=500)
    assert not no_checkpoint(backend, job_id)
    assert "goes back to the queue in 600 s" in job_log(backend, job_id)
    with new_session(engine_for(backend.settings.database_url)) as session:
        assert job_id not in jobstate.pending_dispatch(session)  # in its backoff: not sent yet

    assert run_job(job_id, backend.settings) == "succeeded"  # as a later delivery would
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["attempts"]) == ("succeeded", 2)
    assert f"job {job_id}: resuming from its checkpoint" in job_log(backend, job_id)


@pytest.mark.needs("redis")
def test_the_reaper_sends_a_requeued_job_only_once_its_backoff_is_over(backend):
    """A stale heartbeat requeues the job with not_before = now + backoff; the reaper's rounds leave
    its message unsent until then, and send it once, in the first round after."""
    queue, broker = f"test-{uuid.uuid4().hex[:12]}", f"{REDIS_URL}/0"
    settings = backend.settings.model_copy(update={"stale_after_seconds": 60, "queue": queue, "broker_url": broker,
                                                   "retry_backoff_seconds": 300})
    engine = engine_for(settings.database_url)
    with new_session(engine) as session:  # a job of its own, claimed by a worker that then went silent
        job = Job(id=f"job_{uuid.uuid4().hex[:24]}", tenant_id="t_backoff", dataset_id="ds_none", method="kmeans",
                  n_clusters=2, params={})
        session.add(job)
        session.commit()
        jobstate.claim(session, job.id, "w1")
        job_id = job.id
    set_job(backend, job_id, heartbeat_at=utcnow() - timedelta(seconds=61))
    r = redis.Redis.from_url(broker)
    r.set(f"deepclust:{queue}:alive", "1")  # the broker kept its messages: only the requeued job is sent
    try:
        dispatcher = CeleryDispatcher(settings)
        assert reap_once(engine, settings, dispatcher) == [job_id]
        queued = row(backend, job_id)
        assert (queued.status, queued.dispatch_pending) == ("queued", True)
        assert utcnow() + timedelta(seconds=250) < queued.not_before <= utcnow() + timedelta(seconds=300)
        reap_once(engine, settings, dispatcher)
        assert sent(r, queue, job_id) == 0  # still in its backoff

        set_job(backend, job_id, not_before=utcnow() - timedelta(seconds=1))  # the backoff is over
        for _ in range(2):
            reap_once(engine, settings, dispatcher)
            assert sent(r, queue, job_id) == 1
        assert row(backend, job_id).dispatch_pending is False
    finally:
        r.delete(queue, f"deepclust:{queue}:alive")
        r.close()
        with new_session(engine) as session:
            session.delete(session.get(Job, job_id))
            session.commit()


def sent(r, queue: str, job_id: str) -> int:
    """Messages for ``job_id`` in the queue. Counted by job, not by length: the reaper's round also
    sends what other tests of the session left queued (their batch predictions, say)."""
    return sum(job_id in json.loads(m)["headers"]["argsrepr"] for m in r.lrange(queue, 0, -1))


def test_backoff_doubles_per_attempt_up_to_its_cap():
    assert [jobstate.retry_delay(a, 10, 60) for a in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]


@pytest.mark.needs("redis")
def test_queued_jobs_are_sent_again_when_the_broker_lost_its_messages(backend):
    """Redis restarted without persistence (here: its database flushed) loses every queued message;
    the marker kept beside them goes too, and the reaper's next round sends every queued job again."""
    queue, broker = f"test-{uuid.uuid4().hex[:12]}", f"{REDIS_URL}/{np.random.default_rng().integers(1, 16)}"
    settings = backend.settings.model_copy(update={"queue": queue, "broker_url": broker})
    engine = engine_for(settings.database_url)
    dispatcher = CeleryDispatcher(settings)
    ids = [f"job_{uuid.uuid4().hex[:24]}" for _ in range(2)]
    with new_session(engine) as session:
        for job_id in ids:
            session.add(Job(id=job_id, tenant_id="t_lost", dataset_id="ds_none", method="kmeans", n_clusters=2,
                            params={}))
        session.commit()
    r = redis.Redis.from_url(broker)
    try:
        for job_id in ids:
            dispatcher.submit(job_id)
        reap_once(engine, settings, dispatcher)  # the first round sets the marker (and sends both once more)
        r.delete(queue)
        reap_once(engine, settings, dispatcher)
        assert r.llen(queue) == 0  # the marker is there: nothing was lost, nothing is sent

        r.delete(queue, f"deepclust:{queue}:alive")  # what a restart without persistence leaves
        reap_once(engine, settings, dispatcher)
        sent = " ".join(json.loads(m)["headers"]["argsrepr"] for m in r.lrange(queue, 0, -1))
        assert all(job_id in sent for job_id in ids)
    finally:
        r.delete(queue, f"deepclust:{queue}:alive")
        r.close()
        with new_session(engine) as session:
            for job_id in ids:
                session.delete(session.get(Job, job_id))
            session.commit()
