"""Running the real programs for the end-to-end tests: `deepclust serve`, `deepclust worker`."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

DEEPCLUST = str(Path(sys.executable).parent / "deepclust")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**settings: str) -> dict[str, str]:
    """The environment without the developer's own DEEPCLUST_* settings, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCLUST_")}
    env.update({f"DEEPCLUST_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.3):
    """Poll until ``check()`` is truthy; generous timeouts only, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Program:
    """A subprocess in its own process group, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.log_path = log
        self._log = open(log, "wb")
        self.process = subprocess.Popen(args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, grace: float = 60) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever it started and left behind (pool or job children)
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self._log.close()


def start_server(tmp: Path, env: dict[str, str]) -> tuple[Program, httpx.Client]:
    port = free_port()
    server = Program([DEEPCLUST, "serve", "--port", str(port)], env, tmp, tmp / "serve.log")
    base = f"http://127.0.0.1:{port}"

    def ready():
        if server.process.poll() is not None:
            raise AssertionError(f"deepclust serve exited:\n{server.output()}")
        try:
            return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 180, "deepclust serve to be ready")
    return server, httpx.Client(base_url=base, timeout=60)


def wait_for_job(client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 600) -> dict:
    def reached():
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_until(reached, timeout, f"job {job_id} to reach {statuses}", interval=0.5)


class ServerThread:
    """An app under a real uvicorn in a thread of the test process: real sockets, the test's own logging."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def descendants(pid: int) -> set[int]:
    """The pids of every process below ``pid`` (Linux /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_bytes().rsplit(b")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        parents.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        below = parents.get(todo.pop(), set()) - found
        found |= below
        todo += below
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class CeleryStack:
    client: httpx.Client
    server: Program
    worker: Program
    schema: object  # conftest.PostgresSchema
    tmp: Path

    @property
    def programs(self) -> list[Program]:
        return [self.worker, self.server]


@contextmanager
def celery_stack(tmp: Path, **settings) -> Iterator[CeleryStack]:
    """The production shape in subprocesses: `deepclust migrate`, one `deepclust worker` and
    `deepclust serve` with the Celery dispatcher, on a private PostgreSQL schema, Redis database and
    queue name (so parallel runs stay apart), with ``settings`` on top. Everything is stopped and
    dropped afterwards: the worker with SIGTERM, the server with SIGINT, the schema, the queue's keys."""
    import redis

    from .conftest import REDIS_URL, PostgresSchema

    schema = PostgresSchema()
    broker = f"{REDIS_URL}/{random.randint(1, 15)}"
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = clean_env(database_url=schema.url, dispatcher="celery", broker_url=broker, queue=queue,
                    data_dir=tmp / "data", **settings)
    programs = []
    try:
        migrate = subprocess.run([DEEPCLUST, "migrate"], env=env, cwd=tmp, capture_output=True, text=True)
        assert migrate.returncode == 0, migrate.stderr
        worker = Program([DEEPCLUST, "worker"], env, tmp, tmp / "worker.log")
        programs.append(worker)
        server, client = start_server(tmp, env)
        programs.append(server)
        try:
            yield CeleryStack(client, server, worker, schema, tmp)
        finally:
            client.close()
    finally:
        for program in reversed(programs):
            program.stop(signal.SIGTERM if program is programs[0] else signal.SIGINT)
        schema.drop()
        r = redis.Redis.from_url(broker)
        r.delete(*r.keys(f"*{queue}*") or ["-"])
        r.close()
