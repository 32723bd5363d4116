"""A job's live progress as Server-Sent Events, read from the job row and its history by polling.

No thread per listener: the stream is an async generator that sleeps between polls, and each poll
is one short session in the thread pool (two small queries), so an idle listener holds nothing but
a coroutine and its socket. The job row is the source of truth, whichever worker runs the job.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

from sqlalchemy.engine import Engine
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from deepclust.app.core.db import new_session
from deepclust.app.core.tables import ACTIVE_STATES, Job, JobHistory
from deepclust.app.errors import MALFORMED_REQUEST, TOO_MANY_STREAMS, clip
from deepclust.app.jobs import service as jobs
from deepclust.app.tenancy.auth import LOCAL_TENANT, tenant_for_key
from deepclust.app.tenancy.ownership import owned

BATCH = 500               # history rows per poll: a long history is replayed in bounded steps
KEEPALIVE_SECONDS = 15.0  # a comment line this often keeps proxies from closing an idle stream
MAX_STREAMS = 200  # open event streams per server process; more answer 503 until one closes
_EVENT_ID = re.compile(r"[0-9]{1,19}")  # a history row id: a non-negative 64-bit integer


def check_owner(state, authorization: str | None, job_id: str) -> None:
    """404 unless the key's tenant owns the job. A session of its own, closed before the stream
    starts: a long-lived listener holds no connection."""
    with new_session(state.engine) as session:
        tenant = tenant_for_key(session, authorization) if state.settings.auth_enabled else LOCAL_TENANT
        owned(session, Job, job_id, tenant)


def after_event(last_event_id: str | None) -> int:
    """The history row id a reconnecting client saw last (0: from the start), or 400 for a header
    that is not an id this stream can have sent: negative, not a number, or beyond 64 bits (which
    SQLite cannot even compare, so the stream once began and then broke off without ``end``)."""
    if last_event_id is None or not last_event_id.strip():
        return 0
    value = last_event_id.strip()
    if _EVENT_ID.fullmatch(value) and int(value) < 2**63:
        return int(value)
    raise MALFORMED_REQUEST("Last-Event-ID must be the id of an event this stream sent (a non-negative integer "
                            f"below 2^63); got {clip(value)!r}.", last_event_id=clip(value))


def admit(state) -> None:
    """Take one of the MAX_STREAMS places, or 503 ``too_many_streams``. Check and count in one step
    with no await in between, so simultaneous opens cannot all pass the check before any of them
    counts."""
    open_streams = getattr(state, "event_streams", 0)
    if open_streams >= MAX_STREAMS:
        raise TOO_MANY_STREAMS(f"This server already serves {MAX_STREAMS} event streams; try "
                               "again shortly, or poll GET /v1/jobs/{id}.", {"limit": MAX_STREAMS})
    state.event_streams = open_streams + 1


class CountedStream(StreamingResponse):
    """A stream that gives its place back when it ends, however it ends (the client going away,
    or never being iterated at all)."""

    def __init__(self, content, state, **kwargs):
        super().__init__(content, **kwargs)
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.state.event_streams -= 1


def counted_stream(state, job_id: str, after_id: int) -> CountedStream:
    """The job's events as the response, counted against the process's ``MAX_STREAMS`` (``state``
    is the app's state); 503 ``too_many_streams`` when they are all taken. Call it last: nothing
    between it and returning the response may fail, or the place is never given back."""
    poll_seconds = min(1.0, max(0.05, state.settings.progress_interval_seconds))
    admit(state)
    return CountedStream(job_events(state.engine, job_id, after_id, poll_seconds), state,
                         media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def sse(event: str, data: dict, id_: int | None = None) -> str:
    head = f"id: {id_}\n" if id_ is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def poll(engine: Engine, job_id: str, after_id: int, limit: int = BATCH) -> tuple[dict | None, list[tuple[int, dict]]]:
    """The job resource (None once it is gone) and up to ``limit`` history rows after ``after_id``.

    The job is read before its rows: when it reads as finished, every row of it is already
    committed (the worker writes the last rows with the final status), so none is missed.
    """
    with new_session(engine) as session:
        job = session.get(Job, job_id)
        if job is None:
            return None, []
        resource = jobs.resource(session, job).model_dump(mode="json")
        rows = session.exec(select(JobHistory).where(JobHistory.job_id == job_id, JobHistory.id > after_id)
                            .order_by(JobHistory.id).limit(limit)).all()
        return resource, [(r.id, {"phase": r.phase, "epoch": r.epoch, "loss": r.loss, **r.terms}) for r in rows]


def finished(job: dict) -> bool:
    return job["status"] not in ACTIVE_STATES


async def job_events(engine: Engine, job_id: str, after_id: int = 0, poll_seconds: float = 0.5) -> AsyncIterator[str]:
    """``status`` (the job resource, whenever it changes), ``epoch`` (each history row, from the
    first or from after ``after_id``; the row id is the event id), then ``end`` and the stream
    closes. A job that has already ended sends ``end`` at once."""
    job, rows = await run_in_threadpool(poll, engine, job_id, after_id)
    if job is None:
        return
    if finished(job):
        yield sse("end", job)
        return
    yield sse("status", job)
    sent = job
    while True:
        for id_, row in rows:
            yield sse("epoch", row, id_)
            after_id = id_
        if len(rows) < BATCH:  # caught up with the history
            if finished(job):
                yield sse("end", job)
                return
            if job != sent:
                yield sse("status", job)
                sent = job
            quiet = 0.0
            while True:
                await asyncio.sleep(poll_seconds)
                quiet += poll_seconds
                job, rows = await run_in_threadpool(poll, engine, job_id, after_id)
                if job is None or rows or job != sent:
                    break
                if quiet >= KEEPALIVE_SECONDS:
                    yield ": keepalive\n\n"
                    quiet = 0.0
        else:
            job, rows = await run_in_threadpool(poll, engine, job_id, after_id)
        if job is None:  # deleted while we listened
            return
