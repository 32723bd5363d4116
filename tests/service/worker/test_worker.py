"""run_job and the job state machine on a real database: claim once, cancel at the next epoch,
failures recorded, stale heartbeats reaped, a lost claim cannot write."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import redis

from deepclust.app.core import jobstate
from deepclust.app.core.db import engine_for, new_session, utcnow
from deepclust.app.core.dispatch import CeleryDispatcher, LocalDispatcher
from deepclust.app.core.tables import Job
from deepclust.app.jobs.reaper import reap_once
from deepclust.worker.run import run_job

from ..conftest import (
    DEAD_BROKER,
    REDIS_URL,
    TINY_DEC,
    artifacts,
    blobs,
    npy_bytes,
    upload,
)


@pytest.fixture
def queued_job(api):
    X, _ = blobs(60, 4)
    dataset = upload(api, "blobs.npy", npy_bytes(X)).json()["id"]
    body = {"dataset_id": dataset, "method": "dec", "n_clusters": 3, **TINY_DEC}
    return api.post("/v1/jobs", json={**body, "pretrain": {"epochs": 50, "batch_size": 16}}).json()["id"]


def session_of(backend):
    return new_session(engine_for(backend.settings.database_url))


def set_job(backend, job_id: str, **values) -> None:
    with session_of(backend) as session:
        job = session.get(Job, job_id)
        for name, value in values.items():
            setattr(job, name, value)
        session.commit()


def test_cancel_flag_stops_training_at_the_next_epoch(api, backend, queued_job):
    # The flag is up the moment the worker starts: it must stop after its first epoch.
    set_job(backend, queued_job, cancel_requested=True)
    assert run_job(queued_job, backend.settings) == "cancelled"
    job = api.get(f"/v1/jobs/{queued_job}").json()
    assert job["status"] == "cancelled" and job["finished_at"] and job["model_id"] is None
    history = api.get(f"/v1/jobs/{queued_job}/history").json()
    assert [(r["phase"], r["epoch"]) for r in history] == [("pretrain", 0)]
    assert not [p for p in artifacts(backend.data_dir) if queued_job in p and not p.startswith("logs/")]  # no checkpoint left


def test_a_second_delivery_does_nothing(api, backend, queued_job):
    set_job(backend, queued_job, params={**api.get(f"/v1/jobs/{queued_job}").json()["params"],
                                         "pretrain_epochs": 1})
    assert run_job(queued_job, backend.settings) == "succeeded"
    assert run_job(queued_job, backend.settings) is None
    assert api.get(f"/v1/jobs/{queued_job}").json()["attempts"] == 1


def test_a_failure_is_recorded_with_its_reason(api, backend, queued_job):
    dataset_id = api.get(f"/v1/jobs/{queued_job}").json()["dataset_id"]
    (backend.data_dir / "artifacts" / "datasets" / dataset_id / "x.npy").unlink()
    assert run_job(queued_job, backend.settings) == "failed"
    job = api.get(f"/v1/jobs/{queued_job}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "training_failed"
    assert "x.npy" in job["error"]["message"]


def test_claim_is_exclusive_and_a_lost_claim_cannot_write(backend, queued_job):
    with session_of(backend) as session:
        first = jobstate.claim(session, queued_job, "w1")
        assert first is not None and first.attempts == 1
        assert jobstate.claim(session, queued_job, "w2") is None
        assert jobstate.update_owned(session, queued_job, 1, phase="pretrain")
        # The reaper gives the job to someone else: attempt 1 may no longer write.
        assert jobstate.requeue_or_fail(session, queued_job, 1, "test", max_attempts=3) == "queued"
        assert jobstate.claim(session, queued_job, "w2").attempts == 2
        assert not jobstate.update_owned(session, queued_job, 1, phase="finetune")
        assert not jobstate.finish(session, queued_job, 1, "succeeded")
        assert session.get(Job, queued_job, populate_existing=True).status == "running"


def test_reaper_requeues_stale_jobs_then_gives_up(backend, queued_job):
    settings = backend.settings.model_copy(update={"stale_after_seconds": 60, "max_attempts": 2})
    engine = engine_for(settings.database_url)
    with session_of(backend) as session:
        jobstate.claim(session, queued_job, "w1")
    assert reap_once(engine, settings, LocalDispatcher()) == []  # the heartbeat is fresh

    set_job(backend, queued_job, heartbeat_at=utcnow() - timedelta(seconds=61))
    assert reap_once(engine, settings, LocalDispatcher()) == [queued_job]
    from deepclust.app.core.joblog import read
    from deepclust.app.core.storage import store_for

    assert "no heartbeat for 60 s" in read(store_for(backend.data_dir), queued_job)  # in the job's own log
    with session_of(backend) as session:
        job = session.get(Job, queued_job)
        assert (job.status, job.attempts, job.worker) == ("queued", 1, None)
        jobstate.claim(session, queued_job, "w2")

    set_job(backend, queued_job, heartbeat_at=utcnow() - timedelta(seconds=61))
    assert reap_once(engine, settings, LocalDispatcher()) == []
    with session_of(backend) as session:
        job = session.get(Job, queued_job)
        assert job.status == "failed" and job.error["code"] == "worker_lost" and job.finished_at


@pytest.mark.needs("redis")
def test_a_requeued_job_is_sent_again_once_the_broker_answers(backend, queued_job):
    """The reaper requeues while Redis is down: the job stays marked in its row and its message
    reaches the broker, once, in the first round after Redis is back."""
    queue, broker = f"test-{uuid.uuid4().hex[:12]}", f"{REDIS_URL}/0"
    settings = backend.settings.model_copy(update={"stale_after_seconds": 60, "queue": queue, "broker_url": broker,
                                                   "retry_backoff_seconds": 0})  # no backoff: sent at once
    engine = engine_for(settings.database_url)
    with session_of(backend) as session:
        jobstate.claim(session, queued_job, "w1")
    set_job(backend, queued_job, heartbeat_at=utcnow() - timedelta(seconds=61))

    down = CeleryDispatcher(settings.model_copy(update={"broker_url": DEAD_BROKER}))
    assert reap_once(engine, settings, down) == [queued_job]
    assert reap_once(engine, settings, down) == []
    with session_of(backend) as session:
        job = session.get(Job, queued_job)
        assert (job.status, job.dispatch_pending) == ("queued", True)

    r = redis.Redis.from_url(broker)
    r.set(f"deepclust:{queue}:alive", "1")  # the broker kept its messages: only the requeued job is sent
    try:
        for _ in range(2):  # the second round must not send it again
            assert reap_once(engine, settings, CeleryDispatcher(settings)) == []
            assert r.llen(queue) == 1
        message = json.loads(r.lpop(queue))
        assert message["headers"]["task"] == "deepclust.run_job" and queued_job in message["headers"]["argsrepr"]
    finally:
        r.delete(queue, f"deepclust:{queue}:alive")
        r.close()
    with session_of(backend) as session:
        job = session.get(Job, queued_job)
        assert (job.status, job.dispatch_pending) == ("queued", False)
        assert jobstate.claim(session, queued_job, "w2").attempts == 2


# -- the embedded runner (worker/local.py) ---------------------------------------------------------

def test_the_local_runner_shows_a_job_running_as_soon_as_it_takes_it(api, backend, queued_job):
    import threading

    from deepclust.worker.local import LocalRunner

    from ..processes import wait_until

    # The oldest queued job of the shared test database is the one the runner takes: make it this one.
    set_job(backend, queued_job, params={**api.get(f"/v1/jobs/{queued_job}").json()["params"], "pretrain_epochs": 1},
            created_at=utcnow() - timedelta(days=3650))
    runner = LocalRunner(backend.settings)
    thread = threading.Thread(target=runner.run_next)
    thread.start()
    try:
        def taken():
            with session_of(backend) as session:
                job = session.get(Job, queued_job)
                return job.status != "queued" and (job.status, job.worker, job.attempts)

        # Claimed by the runner itself (status and worker in one update), before the job's process,
        # which takes seconds to import torch, exists to adopt the claim.
        assert wait_until(taken, 120, "the runner to take the job", interval=0.05) == (
            "running", jobstate.worker_name(), 1)
    finally:
        thread.join(300)
        runner.close()  # the process it started ahead for the next job
    job = api.get(f"/v1/jobs/{queued_job}").json()
    assert job["status"] == "succeeded" and job["attempts"] == 1


def test_the_local_runner_leaves_a_job_in_its_backoff_alone(backend, queued_job):
    from deepclust.worker.local import LocalRunner

    set_job(backend, queued_job, created_at=utcnow() - timedelta(days=3650), not_before=utcnow() + timedelta(hours=1))
    runner = LocalRunner(backend.settings)
    try:
        assert queued_job not in runner.runnable()
        set_job(backend, queued_job, not_before=utcnow() - timedelta(seconds=1))
        assert runner.runnable()[0] == queued_job
    finally:
        runner.close()


@pytest.mark.parametrize("cancel_requested, adopted, status, says", [
    (True, True, "cancelled", "it is cancelled"),
    (False, True, "queued", "goes back to the queue and resumes from its checkpoint"),
    (False, False, "queued", "before it started; it goes back to the queue"),
])
def test_stopping_the_server_says_what_becomes_of_the_job(backend, queued_job, caplog, cancel_requested, adopted,
                                                          status, says):
    import multiprocessing
    import socket
    import time

    from deepclust.worker.local import LocalRunner

    child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    child.start()
    with session_of(backend) as session:
        attempt = jobstate.claim(session, queued_job, jobstate.worker_name()).attempts
    worker = f"{socket.gethostname()}:{child.pid}" if adopted else jobstate.worker_name()
    set_job(backend, queued_job, cancel_requested=cancel_requested, worker=worker)
    child.terminate()  # what stopping `deepclust serve` does to the job's process
    child.join()
    with caplog.at_level("INFO", logger="deepclust.worker.local"):
        LocalRunner(backend.settings)._recover(queued_job, attempt, child, "the server stopped")
    with session_of(backend) as session:
        assert session.get(Job, queued_job).status == status
    assert says in caplog.text
    from deepclust.app.core.joblog import read
    from deepclust.app.core.storage import store_for

    assert says in read(store_for(backend.data_dir), queued_job)  # the job's own log tells it too
    if cancel_requested:
        assert "queue" not in caplog.text


def test_on_start_the_runner_requeues_the_jobs_its_previous_process_left_running(backend, api):
    """Only this host's, only where the recorded pid no longer runs; a cancelled one is cancelled;
    a job at its last attempt fails (the attempt rules); the job's log says why."""
    import os
    import socket
    import subprocess
    import sys

    from deepclust.app.core.joblog import read
    from deepclust.app.core.storage import store_for
    from deepclust.worker.local import LocalRunner

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    host = socket.gethostname()
    X, _ = blobs(60, 4)
    dataset = upload(api, "blobs.npy", npy_bytes(X)).json()["id"]
    cases = {"dead": (f"{host}:{gone.pid}", False), "live": (f"{host}:{os.getppid()}", False),
             "other_host": (f"not-{host}:{gone.pid}", False), "cancelling": (f"{host}:{gone.pid}", True),
             "last_attempt": (f"{host}:{gone.pid}", False)}
    jobs = {}
    for case, (worker, cancel) in cases.items():
        job_id = api.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": 3,
                                            **TINY_DEC}).json()["id"]
        with session_of(backend) as session:
            jobstate.claim(session, job_id, worker)
        set_job(backend, job_id, cancel_requested=cancel, worker=worker,
                attempts=backend.settings.max_attempts if case == "last_attempt" else 1)
        jobs[case] = job_id

    # (The database is shared by the session's tests: look at these jobs only.)
    assert set(LocalRunner(backend.settings).requeue_orphans()) & set(jobs.values()) == {jobs["dead"]}
    with session_of(backend) as session:
        status = {case: session.get(Job, job_id).status for case, job_id in jobs.items()}
        requeued = session.get(Job, jobs["dead"])
        assert (requeued.attempts, requeued.worker, requeued.error) == (1, None, None)
        assert session.get(Job, jobs["last_attempt"]).error["code"] == "worker_lost"
    assert status == {"dead": "queued", "live": "running", "other_host": "running", "cancelling": "cancelled",
                      "last_attempt": "failed"}
    store = store_for(backend.data_dir)
    assert f"(pid {gone.pid}) ended with the server that ran it; it goes back to the queue" in read(store, jobs["dead"])
    assert "it is cancelled" in read(store, jobs["cancelling"])
    with session_of(backend) as session:  # out of the way of the other tests' runners
        for job_id in (jobs["dead"], jobs["live"], jobs["other_host"]):
            jobstate.request_cancel(session, job_id)
            jobstate.finish(session, job_id, 1, "cancelled")
    # Nothing left to requeue: a second start finds none of them.
    assert not set(LocalRunner(backend.settings).requeue_orphans()) & set(jobs.values())
