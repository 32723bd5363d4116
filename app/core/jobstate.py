"""The job state machine, as guarded updates on the job row (the source of truth).

queued -> running (claim) -> succeeded | failed | cancelled, and running -> queued when a worker is
lost and the job has attempts left. Every write a worker makes is fenced by the attempt number it
claimed, so a worker that lost its job (reaped, then claimed by another) can no longer change it.
"""
from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, func, select

from deepclust.app.core.db import utcnow
from deepclust.app.core.tables import CANCELLED, FAILED, QUEUED, RUNNING, Job


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _update(session: Session, job_id: str, *where, commit: bool = True, **values) -> bool:
    result = session.execute(update(Job).where(Job.id == job_id, *where).values(**values))
    if commit:
        session.commit()
    return result.rowcount == 1


def _owned(attempt: int) -> tuple:
    return Job.status == RUNNING, Job.attempts == attempt


def claim(session: Session, job_id: str, worker: str) -> Job | None:
    """queued -> running for exactly one caller; a redelivered message, a second runner or a
    held job (``waits_for``) gets None."""
    now = utcnow()
    if not _update(session, job_id, Job.status == QUEUED, Job.waits_for.is_(None),
                   status=RUNNING, attempts=Job.attempts + 1, worker=worker, heartbeat_at=now, dispatch_pending=False,
                   not_before=None,
                   started_at=func.coalesce(Job.started_at, now)):
        return None
    return session.get(Job, job_id, populate_existing=True)


def adopt(session: Session, job_id: str, attempt: int, worker: str) -> Job | None:
    """Take over an attempt claimed on our behalf (the local runner claims before it spawns the
    process that runs the job, so the job shows running at once); None if it is no longer that attempt."""
    if not update_owned(session, job_id, attempt, worker=worker, heartbeat_at=utcnow()):
        return None
    return session.get(Job, job_id, populate_existing=True)


def update_owned(session: Session, job_id: str, attempt: int, *, commit: bool = True, **values) -> bool:
    """Write while the job is still ours; False means we lost it and must stop. With
    ``commit=False`` the update opens a transaction the caller adds to and commits."""
    return _update(session, job_id, *_owned(attempt), commit=commit, **values)


def finish(session: Session, job_id: str, attempt: int, status: str, **values) -> bool:
    return update_owned(session, job_id, attempt, status=status, finished_at=utcnow(), heartbeat_at=None, **values)


def request_cancel(session: Session, job_id: str) -> str | None:
    """Cancel a queued job at once, flag a running one (the worker stops within an epoch).

    Returns the job's status afterwards, or None when it had already finished.
    """
    if _update(session, job_id, Job.status == QUEUED,
               status=CANCELLED, cancel_requested=True, finished_at=utcnow()):
        return CANCELLED
    if _update(session, job_id, Job.status == RUNNING, cancel_requested=True):
        return RUNNING
    return None


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Backoff after a lost attempt ``attempt``: base, 2 base, 4 base, ... at most ``cap`` seconds."""
    return min(cap, base * 2 ** max(attempt - 1, 0))


def requeue_or_fail(session: Session, job_id: str, attempt: int, reason: str, max_attempts: int,
                    *where, retry_in: float = 0.0, code: str = "worker_lost") -> str | None:
    """A lost attempt: back to the queue (resuming from its checkpoint) or, past the limit, failed
    with ``code``. ``retry_in``: the dispatcher sends it again no sooner than that (``not_before``)."""
    if attempt >= max_attempts:
        error = {"code": code, "message": f"{reason}; gave up after {attempt} attempts"}
        return FAILED if _update(session, job_id, *_owned(attempt), *where, status=FAILED, error=error,
                                 finished_at=utcnow(), heartbeat_at=None) else None
    not_before = utcnow() + timedelta(seconds=retry_in) if retry_in > 0 else None
    return QUEUED if _update(session, job_id, *_owned(attempt), *where, status=QUEUED, worker=None,
                             heartbeat_at=None, dispatch_pending=True, not_before=not_before) else None


def reap_stale(session: Session, stale_after_seconds: float, max_attempts: int,
               backoff: tuple[float, float] = (0.0, 0.0)) -> list[str]:
    """Requeue (or fail) running jobs whose heartbeat went stale; returns the requeued ids.
    ``backoff``: (base, cap) of ``retry_delay``."""
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds)
    stale = session.exec(select(Job.id, Job.attempts).where(Job.status == RUNNING, Job.heartbeat_at < cutoff)).all()
    requeued = []
    for job_id, attempt in stale:
        # The heartbeat condition again: the worker may have come back since the select.
        outcome = requeue_or_fail(session, job_id, attempt, f"no heartbeat for {stale_after_seconds:.0f} s",
                                  max_attempts, Job.heartbeat_at < cutoff, retry_in=retry_delay(attempt, *backoff))
        if outcome == QUEUED:
            requeued.append(job_id)
    return requeued


def backoff_over():
    """The condition that a requeued job's retry backoff (``not_before``) has passed."""
    return or_(Job.not_before.is_(None), Job.not_before <= utcnow())


def pending_dispatch(session: Session) -> list[str]:
    """Queued jobs whose message the broker has not taken yet and whose backoff is over, oldest first."""
    return list(session.exec(select(Job.id).where(Job.status == QUEUED, Job.dispatch_pending, backoff_over())
                             .order_by(Job.created_at)).all())


def redispatch_queued(session: Session) -> int:
    """The broker lost its messages (restarted without persistence): every queued job that is not
    held goes back to ``dispatch_pending``, so the next dispatch round sends it again. A job whose
    message did survive gets two; only one claim can win."""
    result = session.execute(update(Job).where(Job.status == QUEUED, Job.waits_for.is_(None),
                                               Job.dispatch_pending.is_(False)).values(dispatch_pending=True))
    session.commit()
    return result.rowcount


def mark_dispatched(session: Session, job_id: str) -> bool:
    return _update(session, job_id, Job.dispatch_pending, dispatch_pending=False)


def fail_queued(session: Session, job_id: str, error: dict) -> bool:
    return _update(session, job_id, Job.status == QUEUED, status=FAILED, error=error, finished_at=utcnow())
