"""Holding up under load, on loopback only: 100 concurrent requests against a real `deepclust serve`
answer without a single 5xx, on the embedded default and on PostgreSQL; an overloaded server and
a starved connection pool answer 503 with the error shape and Retry-After, not a hang or a 500;
a server under load stops when asked."""
from __future__ import annotations

import asyncio
import io
import signal
import socket
import threading
import time
import uuid

import httpx
import numpy as np
import pytest

from deepclust.app.tenancy.auth import create_key
from deepclust.app.core.db import engine_for, new_session
from deepclust.app.core.migrate import upgrade
from deepclust.app.core.settings import Settings
from deepclust.app.main import create_app

from ..conftest import TINY_DEC, PostgresSchema, blobs
from ..processes import ServerThread, clean_env, start_server, wait_for_job
from .test_bad_input import assert_error

CONCURRENT = 100


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    """`deepclust serve` with its local runner, a trained model, a job and a dataset to ask about."""
    tmp = tmp_path_factory.mktemp(f"load-{request.param}")
    settings, headers, schema = {"progress_interval_seconds": 0.2}, {}, None
    if request.param == "postgresql":
        schema = PostgresSchema()
        upgrade(schema.url)
        with new_session(engine_for(schema.url)) as session:
            key, _ = create_key(session, f"load-{uuid.uuid4().hex[:6]}")
        settings.update(database_url=schema.url, auth="enabled", data_dir=tmp / "data")
        headers = {"Authorization": f"Bearer {key}"}
    server, client = start_server(tmp, clean_env(**settings))
    client.headers.update(headers)
    try:
        X, _ = blobs(120, 6)
        buffer = io.BytesIO()
        np.save(buffer, X)
        dataset = client.post("/v1/datasets", files={"file": ("blobs.npy", buffer.getvalue())}).json()["id"]
        job = client.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": 3, **TINY_DEC}).json()
        job = wait_for_job(client, job["id"], {"succeeded", "failed"})
        assert job["status"] == "succeeded", job
        yield server, client, {"dataset": dataset, "job": job["id"], "model": job["model_id"], "X": X}
    finally:
        client.close()
        server.stop()
        if schema is not None:
            schema.drop()


async def _burst(base_url: str, headers: dict, requests: list[tuple[str, str, dict | None]]) -> list[int]:
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=len(requests))
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=120) as client:
        async def one(method: str, url: str, body: dict | None) -> int:
            return (await client.request(method, url, json=body)).status_code

        return await asyncio.gather(*(one(*r) for r in requests))


def test_100_concurrent_requests_get_no_5xx(served):
    server, client, ids = served
    predict = {"instances": ids["X"][:5].tolist()}
    mix = [("GET", "/v1/datasets", None), ("GET", f"/v1/jobs/{ids['job']}", None),
           ("POST", f"/v1/models/{ids['model']}/predict", predict), ("GET", "/v1/jobs", None),
           ("GET", f"/v1/models/{ids['model']}", None)]
    requests = [mix[i % len(mix)] for i in range(CONCURRENT)]
    for _ in range(2):  # twice: the second burst meets warm connections, pool and model cache
        statuses = asyncio.run(_burst(str(client.base_url), dict(client.headers), requests))
        assert all(status == 200 for status in statuses), sorted(set(statuses))
    assert "unhandled error" not in server.output() and "Traceback" not in server.output()


def test_server_under_load_stops_when_asked(tmp_path):
    server, client = start_server(tmp_path, clean_env())
    stop_load = threading.Event()

    def hammer():
        async def loop():
            async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30,
                                         limits=httpx.Limits(max_connections=50)) as load:
                async def one():
                    while not stop_load.is_set():
                        try:
                            await load.get("/v1/datasets")
                        except httpx.HTTPError:
                            await asyncio.sleep(0.05)

                await asyncio.gather(*(one() for _ in range(50)))

        asyncio.run(loop())

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        time.sleep(2)  # the load is on (not a timing assertion: it only makes sure requests are in flight)
        server.process.send_signal(signal.SIGINT)
        # Generous: it must stop by itself (in-flight requests get shutdown_grace_seconds), where it
        # used to take minutes.
        assert server.process.wait(timeout=60) == 0, server.output()
    finally:
        stop_load.set()
        thread.join(30)
        client.close()
        server.stop()
    assert "Traceback" not in server.output()


def test_the_served_socket_answers_without_nagle_delays():
    """`deepclust serve` binds its own socket; asyncio turns Nagle off on its connections only when
    it says it is TCP (with Nagle on, every small answer waited ~40 ms for a delayed ACK)."""
    from deepclust.app.cli.admin import bind

    seen = []

    async def main():
        async def handler(reader, writer):
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handler, sock=bind("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            while not seen:
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert seen == [1]


# -- overload and a starved pool, on an in-process uvicorn ----------------------------------------------

def hold_a_slot(port: int) -> socket.socket:
    """An upload whose body never comes: it holds a request slot until the socket closes."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 b"Content-Length: 100000\r\n\r\n--b\r\n")
    return sock


def test_overload_answers_503_with_retry_after(tmp_path):
    settings = Settings(data_dir=tmp_path, auth="disabled", reaper_interval_seconds=0, max_active_requests=1,
                        max_waiting_requests=1, queue_timeout_seconds=0.5, retry_after_seconds=3)
    upgrade(settings.database_url)
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/v1/datasets").status_code == 200
        held = hold_a_slot(server.port)
        try:
            deadline = time.monotonic() + 30
            while (r := client.get("/v1/datasets")).status_code == 200:  # until the upload holds the slot
                assert time.monotonic() < deadline
            error = assert_error(r, 503, "overloaded")  # waited its 0.5 s, then refused
            assert r.headers["Retry-After"] == "3" and error["details"]["retry_after"] == 3
            assert client.get("/healthz").status_code == 200  # liveness is never queued
        finally:
            held.close()
        deadline = time.monotonic() + 30
        while (r := client.get("/v1/datasets")).status_code != 200:  # the slot comes back
            assert r.status_code == 503 and time.monotonic() < deadline
        assert "deepclust_http_requests_total" in client.get("/metrics").text


def test_starved_connection_pool_answers_503_naming_the_database(tmp_path):
    settings = Settings(data_dir=tmp_path, auth="disabled", reaper_interval_seconds=0, request_threads=2,
                        db_pool_timeout_seconds=0.3)
    upgrade(settings.database_url)
    app = create_app(settings)
    engine = app.state.engine
    held = [engine.connect() for _ in range(engine.pool.size() + engine.pool._max_overflow)]
    try:
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            error = assert_error(client.get("/v1/datasets"), 503, "database_unavailable")
            assert error["details"]["dependency"] == "database"
            for conn in held:
                conn.close()
            held = []
            assert client.get("/v1/datasets").status_code == 200
    finally:
        for conn in held:
            conn.close()
