"""Faults of the real dependencies, on the production shape (PostgreSQL, Redis, `deepclust serve` with
the Celery dispatcher, a real `deepclust worker`): Redis restarted while jobs are queued and running,
PostgreSQL stopped and started while a job trains. Nothing is lost, nothing fails.

These tests restart the machine's own PostgreSQL and Redis (they must run on this machine and be
controllable: `pg_ctlcluster`, `redis-server`), which disturbs anything else using them meanwhile;
every service is started again in a `finally`, and waited for. Select them with `-m faults`,
leave them out with `-m "not faults"`.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import redis

from ..conftest import PG_URL, REDIS_URL, digits
from ..journey import DEC_JOB
from ..processes import celery_stack, wait_for_job, wait_until

pytestmark = [pytest.mark.needs("postgresql", "redis"), pytest.mark.faults]

ENDED = {"succeeded", "failed", "cancelled"}
# Hundreds of short epochs: the job is still training when the fault lands, seconds after its
# second epoch, even on a fast machine (a busy one takes minutes).
LONG = {"pretrain": {"epochs": 300, "batch_size": 64}}
SHORT = {"pretrain": {"epochs": 3, "batch_size": 64}}


# -- controlling the machine's services ---------------------------------------------------------------

def _local(url: str) -> bool:
    return urlsplit(url.replace("postgresql+psycopg2", "postgresql")).hostname in ("127.0.0.1", "localhost")


def _pg_version() -> str | None:
    versions = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
    return versions[0] if versions else None


def _pg_ready() -> bool:
    parsed = urlsplit(PG_URL.replace("postgresql+psycopg2", "postgresql"))
    return subprocess.run(["pg_isready", "-q", "-h", parsed.hostname, "-p", str(parsed.port or 5432)]).returncode == 0


def _pg_ctl(action: str, *extra: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", action, *extra],
                   check=True, capture_output=True, timeout=120)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(f"{REDIS_URL}/0", socket_timeout=5)


def _redis_ready() -> bool:
    try:
        return bool(_redis().ping())
    except redis.RedisError:
        return False


def _redis_command_line() -> list[str]:
    """How to start this Redis again as it runs now: its config file, or the settings .ci/run gives."""
    r = _redis()
    config_file = r.info("server").get("config_file")
    if config_file:
        return ["redis-server", config_file, "--daemonize", "yes"]
    config = r.config_get("*")
    args = ["redis-server", "--daemonize", "yes"]
    for name in ("bind", "port", "save", "appendonly", "dir", "logfile", "dbfilename"):
        if name in config:
            args += [f"--{name}", *(config[name].split() if name == "bind" else [config[name]])]
    return args


def _wait(check, what: str) -> None:
    wait_until(check, 120, what, interval=0.5)


def _controllable(service: str) -> str | None:
    """None when this test may restart the service, else why not."""
    if service == "postgresql":
        if not _local(PG_URL) or not shutil.which("pg_ctlcluster") or _pg_version() is None:
            return "PostgreSQL is not a local cluster that pg_ctlcluster controls"
    elif not _local(REDIS_URL) or not shutil.which("redis-server"):
        return "Redis is not a local redis-server this test can start"
    return None


# -- the stack ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # A heartbeat is stale only after a minute, so an outage of seconds requeues nothing; the reaper
    # runs every second, so a lost message is sent again at once.
    with celery_stack(tmp_path_factory.mktemp("faults"), progress_interval_seconds=0.2, heartbeat_seconds=1,
                      checkpoint_interval_seconds=1, stale_after_seconds=60, reaper_interval_seconds=1,
                      retry_backoff_seconds=1, db_retry_seconds=300) as running:
        X, _ = digits(300)
        buffer = io.BytesIO()
        np.save(buffer, X)
        dataset = running.client.post("/v1/datasets", files={"file": ("digits300.npy", buffer.getvalue())}).json()["id"]
        yield running.client, dataset, running.programs, running.tmp


def submit(client, dataset: str, shape: dict) -> str:
    r = client.post("/v1/jobs", json={"dataset_id": dataset, **DEC_JOB, **shape})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def training(client, job_id: str) -> bool:
    job = client.get(f"/v1/jobs/{job_id}").json()
    return job["status"] == "running" and job["phase"] == "pretrain" and (job["progress"]["epoch"] or 0) >= 2


def job_log(tmp: Path, job_id: str) -> str:
    path = tmp / "data" / "artifacts" / "logs" / f"{job_id}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def pretrain_epochs(client, job_id: str) -> list[int]:
    return [r["epoch"] for r in client.get(f"/v1/jobs/{job_id}/history").json() if r["phase"] == "pretrain"]


# -- the faults -------------------------------------------------------------------------------------------

def test_redis_restarted_while_jobs_are_queued_and_running_loses_none(stack):
    """Redis (no persistence, as CI runs it) restarts with one job running and two queued: their
    messages are gone with it. The running job finishes on its own; the reaper sees the broker's
    marker gone and sends the queued ones again; all three succeed, the running one in one attempt."""
    if why := _controllable("redis"):
        pytest.skip(why)
    client, dataset, programs, tmp = stack
    running = submit(client, dataset, LONG)
    queued = [submit(client, dataset, SHORT) for _ in range(2)]
    _wait(lambda: training(client, running), "the first job to train")
    assert all(client.get(f"/v1/jobs/{j}").json()["status"] == "queued" for j in queued)

    command = _redis_command_line()
    try:
        try:
            _redis().shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the answer to SHUTDOWN is the connection closing
        _wait(lambda: not _redis_ready(), "Redis to stop")
        refused = client.post("/v1/jobs", json={"dataset_id": dataset, **DEC_JOB, **SHORT})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "broker_unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
    finally:
        if not _redis_ready():
            subprocess.run(command, check=True, capture_output=True, timeout=60)
        _wait(_redis_ready, "Redis to answer again")

    for job_id in [running, *queued]:
        job = wait_for_job(client, job_id, ENDED)
        assert job["status"] == "succeeded", job
    assert client.get(f"/v1/jobs/{running}").json()["attempts"] == 1
    assert pretrain_epochs(client, running) == list(range(LONG["pretrain"]["epochs"]))
    assert "the broker lost its messages" in programs[1].output()
    assert client.get("/v1/jobs", params={"limit": 100}).json()["total"] == 3  # the refused one was not created


def test_postgresql_down_answers_503_and_a_running_job_trains_through_it(stack):
    """PostgreSQL stops while a job trains and another is queued: the API answers 503
    database_unavailable (the error shape) until it is back, then recovers by itself; the job
    trains on through the outage, writes the epochs it could not once it can, and succeeds in its
    first attempt; the queued job succeeds too."""
    if why := _controllable("postgresql"):
        pytest.skip(why)
    client, dataset, _, tmp = stack
    running = submit(client, dataset, LONG)
    queued = submit(client, dataset, SHORT)
    _wait(lambda: training(client, running), "the job to train")

    try:
        _pg_ctl("stop")  # fast mode: sessions are cut, as in a crash of the server
        _wait(lambda: not _pg_ready(), "PostgreSQL to stop")
        answer = client.get(f"/v1/jobs/{running}")
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "database_unavailable" and error["message"] and error["details"]["dependency"] == "database"
        assert client.get("/readyz").status_code == 503
        # The job meets the outage while it trains, and goes on.
        _wait(lambda: "the database is unreachable" in job_log(tmp, running), "the job to meet the outage")
    finally:
        if not _pg_ready():
            _pg_ctl("start")
        _wait(_pg_ready, "PostgreSQL to answer again")

    _wait(lambda: client.get(f"/v1/jobs/{running}").status_code == 200, "the API to recover")
    job = wait_for_job(client, running, ENDED)
    assert (job["status"], job["attempts"]) == ("succeeded", 1), job
    assert pretrain_epochs(client, running) == list(range(LONG["pretrain"]["epochs"]))  # every epoch, once
    assert "caught up" in job_log(tmp, running)
    assert wait_for_job(client, queued, ENDED)["status"] == "succeeded"
