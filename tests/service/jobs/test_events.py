"""GET /v1/jobs/{id}/events: Server-Sent Events of a job run by the real worker, read as a client would."""
from __future__ import annotations

import asyncio
import json
import threading

from fastapi.testclient import TestClient
from sqlalchemy import insert

from deepclust.app.jobs.endpoints import MAX_STREAMS
from deepclust.app.core.db import engine_for, new_session
from deepclust.app.jobs.events import job_events
from deepclust.app.core import jobstate
from deepclust.app.core.tables import JobHistory
from deepclust.worker.run import run_job

from ..conftest import TINY_DEC, blobs, npy_bytes, upload
from ..http.test_bad_input import assert_error


def parse(lines) -> list[dict]:
    """SSE frames as {"event", "data", "id"}; comments (keep-alives) are skipped."""
    events, frame = [], {}
    for line in lines:
        if line == "":
            if "data" in frame:
                events.append({"event": frame.get("event", "message"), "data": json.loads(frame["data"]),
                               "id": frame.get("id")})
            frame = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            frame[field] = value
    return events


def read_events(client: TestClient, job_id: str, first_event: threading.Event | None = None,
                headers: dict | None = None) -> list[dict]:
    """Every event until the server closes the stream."""
    events, frame = [], []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            frame.append(line)
            if line == "":
                events += parse(frame)
                frame = []
                if events and first_event is not None:
                    first_event.set()
    return events + parse(frame + [""])


def queued_job(api, n=80) -> dict:
    X, _ = blobs(n, 6, 3)
    dataset = upload(api, "blobs.npy", npy_bytes(X)).json()
    job = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "dec", "n_clusters": 3, **TINY_DEC})
    assert job.status_code == 202, job.text
    return job.json()


def listen(api, job_id: str, **kwargs) -> tuple[threading.Thread, list, threading.Event]:
    """Read the job's events in a thread (a second client with the same key), as a browser tab would."""
    got, first = [], threading.Event()
    client = TestClient(api.app, headers=dict(api.headers))

    def run():
        with client:
            got.extend(read_events(client, job_id, first, **kwargs))
        first.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert first.wait(60), "no first event"
    return thread, got, first


def test_a_running_job_streams_status_every_epoch_and_end(api, backend):
    # Enough samples that the job runs for many of the stream's 50 ms polls: a job that ends
    # within one poll (80 samples on a fast, quiet machine) is never seen `running`.
    job = queued_job(api, n=2000)
    thread, events, _ = listen(api, job["id"])
    assert run_job(job["id"], backend.settings) == "succeeded"
    thread.join(60)
    assert not thread.is_alive(), "the stream did not close after the job ended"

    kinds = [e["event"] for e in events]
    assert kinds[0] == "status" and events[0]["data"]["status"] == "queued"
    assert kinds[-1] == "end" and kinds.count("end") == 1
    final = api.get(f"/v1/jobs/{job['id']}").json()
    assert events[-1]["data"] == final and final["status"] == "succeeded"
    # Every history row arrives once, in order, its id the event id.
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["data"] for e in epochs] == api.get(f"/v1/jobs/{job['id']}/history").json()
    ids = [int(e["id"]) for e in epochs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    statuses = [e["data"] for e in events if e["event"] == "status"]
    assert "running" in {s["status"] for s in statuses}
    assert all(a != b for a, b in zip(statuses, statuses[1:]))  # only changes are sent


def test_an_ended_job_sends_end_at_once(api, backend):
    job = queued_job(api, n=40)
    assert run_job(job["id"], backend.settings) == "succeeded"
    events = read_events(api, job["id"])
    assert events == [{"event": "end", "data": api.get(f"/v1/jobs/{job['id']}").json(), "id": None}]


def test_cancelling_a_queued_job_ends_its_stream(api):
    job = queued_job(api, n=40)
    thread, events, _ = listen(api, job["id"])
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    thread.join(60)
    assert not thread.is_alive()
    assert [e["event"] for e in events] == ["status", "end"]
    assert events[1]["data"]["status"] == "cancelled"


def test_resume_after_the_last_event_id(api, backend):
    """A running job's history replays from the start, or after the id a reconnecting client saw."""
    job = queued_job(api, n=40)
    engine = engine_for(backend.settings.database_url)
    with new_session(engine) as session:
        assert jobstate.claim(session, job["id"], "test:1") is not None
        session.execute(insert(JobHistory), [{"job_id": job["id"], "phase": "pretrain", "epoch": e, "loss": 1.0 / (e + 1),
                                              "terms": {"reconstruction": 1.0 / (e + 1)}} for e in range(5)])
        session.commit()

    async def first(n: int, after: int = 0) -> list[str]:
        stream = job_events(engine, job["id"], after, poll_seconds=0.05)
        try:
            return [await anext(stream) for _ in range(n)]
        finally:
            await stream.aclose()

    everything = parse("".join(asyncio.run(first(6))).split("\n"))
    assert [e["event"] for e in everything] == ["status"] + ["epoch"] * 5
    assert [e["data"]["epoch"] for e in everything[1:]] == [0, 1, 2, 3, 4]
    assert everything[3]["data"] == {"phase": "pretrain", "epoch": 2, "loss": 1 / 3, "reconstruction": 1 / 3}

    after = int(everything[3]["id"])
    resumed = parse("".join(asyncio.run(first(3, after))).split("\n"))
    assert [(e["event"], e["data"].get("epoch")) for e in resumed] == [("status", None), ("epoch", 3), ("epoch", 4)]

    # Over HTTP, with the header a reconnecting EventSource sends; the job then ends.
    with new_session(engine) as session:
        jobstate.request_cancel(session, job["id"])
        jobstate.finish(session, job["id"], 1, "cancelled")
    assert [e["event"] for e in read_events(api, job["id"], headers={"Last-Event-ID": str(after)})] == ["end"]


def test_events_need_the_key_and_the_owner(api, backend):
    job = queued_job(api, n=40)
    anonymous = TestClient(api.app)
    assert_error(anonymous.get(f"/v1/jobs/{job['id']}/events"), 401, "unauthorized")
    with backend.client() as other:
        assert_error(other.get(f"/v1/jobs/{job['id']}/events"), 404, "job_not_found")
    assert_error(api.get("/v1/jobs/job_missing/events"), 404, "job_not_found")
    api.post(f"/v1/jobs/{job['id']}/cancel")


def test_streams_are_bounded(backend):
    app = backend.app()
    with backend.client(app) as api:
        job = queued_job(api, n=40)
        app.state.event_streams = MAX_STREAMS
        response = api.get(f"/v1/jobs/{job['id']}/events")
        assert_error(response, 503, "too_many_streams")
        app.state.event_streams = MAX_STREAMS - 1
        api.post(f"/v1/jobs/{job['id']}/cancel")
        assert [e["event"] for e in read_events(api, job["id"])] == ["end"]
        assert app.state.event_streams == MAX_STREAMS - 1  # the stream that ended gave its place back


def test_an_event_id_no_stream_can_have_sent_is_a_400(api, backend):
    """2^63 once began a 200 stream on SQLite and broke it off without `end` (OverflowError)."""
    job = queued_job(api, n=40)
    api.post(f"/v1/jobs/{job['id']}/cancel")
    for bad in (str(2**63), str(2**64 + 5), "9" * 40, "-1", "abc", "1e3", "\u00b2", "+5"):
        error = assert_error(api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": bad.encode()}), 400,
                             "malformed_request")
        assert "Last-Event-ID" in error["message"]
    for good in (str(2**63 - 1), "0", ""):
        assert [e["event"] for e in read_events(api, job["id"], headers={"Last-Event-ID": good})] == ["end"]


def test_the_stream_cap_is_exact_under_simultaneous_opens(backend, monkeypatch):
    """230 simultaneous opens were admitted 205-209 times under a cap of 200: the check and the
    count were apart. Here 30 clients open at once under a cap of 5, on a real server."""
    import httpx

    from deepclust.app.jobs import events as events_route

    from ..processes import ServerThread

    monkeypatch.setattr(events_route, "MAX_STREAMS", 5)
    app = backend.app()
    with backend.client(app) as api, ServerThread(app) as server:
        job = queued_job(api, n=40)
        statuses, opened, release = [], threading.Barrier(31), threading.Event()

        def open_one():
            with httpx.Client(base_url=server.url, headers=dict(api.headers), timeout=60) as client:
                with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
                    statuses.append(response.status_code)
                    opened.wait(60)
                    release.wait(60)

        threads = [threading.Thread(target=open_one, daemon=True) for _ in range(30)]
        for thread in threads:
            thread.start()
        opened.wait(60)  # every client has its answer, the admitted ones still streaming
        assert sorted(statuses).count(200) == 5 and statuses.count(503) == 25, statuses
        release.set()
        for thread in threads:
            thread.join(60)
        api.post(f"/v1/jobs/{job['id']}/cancel")
        deadline = threading.Event()
        for _ in range(100):
            if app.state.event_streams == 0:
                break
            deadline.wait(0.1)
        assert app.state.event_streams == 0  # every place was given back
