"""The local runner's supervision, with real processes: a job process never outlives the process
that spawned it (SIGKILL included), the next `deepclust serve` resumes the job it left at once, a
job goes to the process started ahead for it, and a stopped server leaves no process behind."""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from deepclust.worker.supervision import PARENT_GONE, pid_alive

from ..conftest import digits
from ..journey import LONG_PRETRAIN, job_owner, train_dec
from ..processes import clean_env, cmdline, descendants, start_server, wait_for_job, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")

REPO = Path(__file__).resolve().parents[3]  # `python -c` imports worker from here
SETTINGS = {"progress_interval_seconds": 0.2, "heartbeat_seconds": 1, "checkpoint_interval_seconds": 0}


# -- worker/supervision.py -------------------------------------------------------------------------

def test_a_child_whose_parent_went_before_it_was_supervised_exits_at_once():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # stands for a parent that died before the child armed anything
    code = "import sys, time\nfrom worker.supervision import die_with_parent\ndie_with_parent(int(sys.argv[1]))\n" \
           "time.sleep(600)"
    child = subprocess.run([sys.executable, "-c", code, str(gone.pid)], cwd=REPO, timeout=120)
    assert child.returncode == PARENT_GONE


# The grandchild arms supervision against its parent, the middle process, which the test then kills.
GRANDCHILD = "import os, sys, time\nfrom worker import supervision\n" \
             "getattr(supervision, sys.argv[1])(os.getppid(), 0.1)\nprint('armed', flush=True)\ntime.sleep(600)"
MIDDLE = "import subprocess, sys\np = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]])\n" \
         "print(p.pid, flush=True)\np.wait()"


@pytest.mark.parametrize("how", ["die_with_parent", "watch_parent"])  # prctl on Linux; the fallback thread
def test_a_supervised_child_ends_when_its_parent_is_killed(how):
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, GRANDCHILD, how], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    lines = [middle.stdout.readline().strip() for _ in range(2)]
    grandchild = int(next(line for line in lines if line.isdigit()))
    try:
        assert "armed" in lines and pid_alive(grandchild)
        middle.kill()
        middle.wait()
        wait_until(lambda: not pid_alive(grandchild), 60, "the orphaned child to end")
    finally:
        middle.stdout.close()
        if pid_alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


# -- deepclust serve -------------------------------------------------------------------------------

def upload_digits(client, n: int = 300) -> str:
    X, _ = digits(n)
    buffer = io.BytesIO()
    np.save(buffer, X)
    r = client.post("/v1/datasets", files={"file": ("digits.npy", buffer.getvalue())})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def job_processes(server_pid: int) -> set[int]:
    """The server's job processes (waiting or running a job), not multiprocessing's resource tracker."""
    return {pid for pid in descendants(server_pid) if "spawn_main" in cmdline(pid)}


def job_status(database_url: str, job_id: str) -> str:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id}).scalar_one()
    engine.dispose()
    return status


def test_killing_the_server_ends_its_job_process_and_the_next_server_resumes_the_job(tmp_path):
    env = clean_env(**SETTINGS)
    database_url = f"sqlite:///{tmp_path / 'data' / 'deepclust.db'}"
    server, client = start_server(tmp_path, env)
    try:
        job = train_dec(client, upload_digits(client), pretrain=LONG_PRETRAIN)

        def checkpointed_in_pretraining():
            state = client.get(f"/v1/jobs/{job['id']}").json()
            return (state["status"] == "running" and state["phase"] == "pretrain"
                    and (state["progress"]["epoch"] or 0) >= 2)

        wait_until(checkpointed_in_pretraining, 300, "the job to run a few pretraining epochs")
        host, pid = job_owner(database_url, job["id"]).rsplit(":", 1)
        below = descendants(server.process.pid)
        assert host == socket.gethostname() and int(pid) in below
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        wait_until(lambda: not [p for p in below if pid_alive(p)], 120, "the server's processes to end with it")
        assert job_status(database_url, job["id"]) == "running"  # what the row says; nothing runs it
    finally:
        client.close()
        server.stop()

    # The reaper is off: only the runner's start-up can give the job back to the queue.
    server, client = start_server(tmp_path, clean_env(**SETTINGS, reaper_interval_seconds=0))
    try:
        done = wait_for_job(client, job["id"], {"succeeded", "failed", "cancelled"})
        assert done["status"] == "succeeded" and done["attempts"] == 2, done
        history = client.get(f"/v1/jobs/{job['id']}/history").json()
        assert [r["epoch"] for r in history if r["phase"] == "pretrain"] == list(range(LONG_PRETRAIN["epochs"]))
        log = client.get(f"/v1/jobs/{job['id']}/logs").text
        assert f"(pid {pid}) ended with the server that ran it; it goes back to the queue" in log
        assert "resuming from its checkpoint" in log
    finally:
        client.close()
        server.stop()


def test_a_job_goes_to_the_process_started_ahead_and_a_stopped_server_leaves_no_process(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'data' / 'deepclust.db'}"
    server, client = start_server(tmp_path, clean_env(**SETTINGS))
    try:
        waiting = wait_until(lambda: job_processes(server.process.pid), 120, "a process waiting for the first job")
        assert len(waiting) == 1  # one ahead, not a pool
        job = wait_for_job(client, train_dec(client, upload_digits(client))["id"], {"succeeded", "failed", "cancelled"})
        assert job["status"] == "succeeded", job
        assert job_owner(database_url, job["id"]) == f"{socket.gethostname()}:{next(iter(waiting))}"
        # The next job's process was started when this one was handed over; the finished one ends.
        def only_the_next() -> set[int] | None:
            found = job_processes(server.process.pid)
            return found if found and not found & waiting else None

        ahead = wait_until(only_the_next, 120, "the finished job's process to end and one to wait for the next job")
        assert len(ahead) == 1

        below = descendants(server.process.pid)
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(120) == 0
        assert not [p for p in ahead if pid_alive(p)]  # stopping waits for it
        wait_until(lambda: not [p for p in below if pid_alive(p)], 60, "every process of the server to end")
    finally:
        client.close()
        server.stop()
