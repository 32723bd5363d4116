"""A job's live progress as Server-Sent Events, read from the job row and its history by polling.

No thread per listener: the stream is an async generator that sleeps between polls, and each poll
is one short session in the thread pool (two small queries), so an idle listener holds nothing but
a coroutine and its socket. The job row is the source of truth, whichever worker runs the job.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sqlalchemy.engine import Engine
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from deepclust.app.core.db import new_session
from deepclust.app.core.tables import ACTIVE_STATES, Job, JobHistory
from deepclust.app.errors import TOO_MANY_STREAMS
from deepclust.app.jobs.schemas import JobOut
from deepclust.app.tenancy.auth import LOCAL_TENANT, tenant_for_key
from deepclust.app.tenancy.ownership import owned

BATCH = 500               # history rows per poll: a long history is replayed in bounded steps
KEEPALIVE_SECONDS = 15.0  # a comment line this often keeps proxies from closing an idle stream
MAX_STREAMS = 200  # open event streams per server process; more answer 503 until one closes


def check_owner(state, authorization: str | None, job_id: str) -> None:
    """404 unless the key's tenant owns the job. A session of its own, closed before the stream
    starts: a long-lived listener holds no connection."""
    with new_session(state.engine) as session:
        tenant = tenant_for_key(session, authorization) if state.settings.auth_enabled else LOCAL_TENANT
        owned(session, Job, job_id, tenant)


def counted_stream(state, job_id: str, after_id: int) -> AsyncIterator[str]:
    """The job's events, counted against the process's ``MAX_STREAMS`` (``state`` is the app's
    state); 503 ``too_many_streams`` when they are all taken."""
    if getattr(state, "event_streams", 0) >= MAX_STREAMS:
        raise TOO_MANY_STREAMS(f"This server already serves {MAX_STREAMS} event streams; try "
                               "again shortly, or poll GET /v1/jobs/{id}.", {"limit": MAX_STREAMS})
    poll_seconds = min(1.0, max(0.05, state.settings.progress_interval_seconds))

    async def counted():
        state.event_streams = getattr(state, "event_streams", 0) + 1
        try:
            async for chunk in job_events(state.engine, job_id, after_id, poll_seconds):
                yield chunk
        finally:  # also when the client went away and the response was cancelled
            state.event_streams -= 1

    return counted()


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
        resource = JobOut.of(job).model_dump(mode="json")
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
