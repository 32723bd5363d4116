"""A batch prediction's state machine, as guarded updates on its row: the rules of jobstate.py
(claim, fence by ``attempts``, cancel, requeue or fail a lost attempt, reap a stale heartbeat,
send what the broker has not taken) for the ``predictions`` table.

queued -> running (claim) -> succeeded | failed | cancelled, and running -> queued when a worker is
lost and attempts are left. A worker writes only while the row still carries the attempt it
claimed, so one that lost its prediction (reaped, then claimed again) cannot change it any more.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, func, select

from deepclust.app.core.db import utcnow
from deepclust.app.core.jobstate import retry_delay
from deepclust.app.core.tables import CANCELLED, FAILED, QUEUED, RUNNING, Prediction

PREFIX = "prd_"  # a prediction's id, told apart from a job's where a runner is handed either


def is_prediction(run_id: str) -> bool:
    """Whether an id handed to a worker is a batch prediction's rather than a job's."""
    return run_id.startswith(PREFIX)


def _update(session: Session, prediction_id: str, *where, **values) -> bool:
    result = session.execute(update(Prediction).where(Prediction.id == prediction_id, *where).values(**values))
    session.commit()
    return result.rowcount == 1


def _owned(attempt: int) -> tuple:
    return Prediction.status == RUNNING, Prediction.attempts == attempt


def claim(session: Session, prediction_id: str, worker: str) -> Prediction | None:
    """queued -> running for exactly one caller; a redelivered message or a second runner gets None."""
    now = utcnow()
    if not _update(session, prediction_id, Prediction.status == QUEUED,
                   status=RUNNING, attempts=Prediction.attempts + 1, worker=worker, heartbeat_at=now,
                   dispatch_pending=False, not_before=None, started_at=func.coalesce(Prediction.started_at, now)):
        return None
    return session.get(Prediction, prediction_id, populate_existing=True)


def adopt(session: Session, prediction_id: str, attempt: int, worker: str) -> Prediction | None:
    """Take over an attempt the local runner claimed on our behalf; None if it is no longer that attempt."""
    if not update_owned(session, prediction_id, attempt, worker=worker, heartbeat_at=utcnow()):
        return None
    return session.get(Prediction, prediction_id, populate_existing=True)


def update_owned(session: Session, prediction_id: str, attempt: int, **values) -> bool:
    """Write while the prediction is still ours; False means we lost it and must stop."""
    return _update(session, prediction_id, *_owned(attempt), **values)


def finish(session: Session, prediction_id: str, attempt: int, status: str, **values) -> bool:
    return update_owned(session, prediction_id, attempt, status=status, finished_at=utcnow(), heartbeat_at=None,
                        **values)


def request_cancel(session: Session, prediction_id: str) -> str | None:
    """Cancel a queued prediction at once, flag a running one (its worker stops within a batch).
    Returns the status afterwards, or None when it had already finished."""
    if _update(session, prediction_id, Prediction.status == QUEUED,
               status=CANCELLED, cancel_requested=True, finished_at=utcnow()):
        return CANCELLED
    if _update(session, prediction_id, Prediction.status == RUNNING, cancel_requested=True):
        return RUNNING
    return None


def cancel_requested(session: Session, prediction_id: str) -> bool:
    """One primary-key read, between batches."""
    return bool(session.exec(select(Prediction.cancel_requested).where(Prediction.id == prediction_id)).first())


def requeue_or_fail(session: Session, prediction_id: str, attempt: int, reason: str, max_attempts: int,
                    *where, retry_in: float = 0.0, code: str = "worker_lost") -> str | None:
    """A lost attempt: back to the queue (the next attempt resumes after the parts already stored)
    or, past the limit, failed with ``code``."""
    if attempt >= max_attempts:
        error = {"code": code, "message": f"{reason}; gave up after {attempt} attempts"}
        return FAILED if _update(session, prediction_id, *_owned(attempt), *where, status=FAILED, error=error,
                                 finished_at=utcnow(), heartbeat_at=None) else None
    not_before = utcnow() + timedelta(seconds=retry_in) if retry_in > 0 else None
    return QUEUED if _update(session, prediction_id, *_owned(attempt), *where, status=QUEUED, worker=None,
                             heartbeat_at=None, dispatch_pending=True, not_before=not_before) else None


def reap_stale(session: Session, stale_after_seconds: float, max_attempts: int,
               backoff: tuple[float, float] = (0.0, 0.0)) -> tuple[list[str], list[str]]:
    """Requeue (or fail) running predictions whose heartbeat went stale, and cancel those whose
    cancel was asked; returns the ids requeued and the ids cancelled (whose files may go)."""
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds)
    stale = session.exec(select(Prediction.id, Prediction.attempts, Prediction.cancel_requested)
                         .where(Prediction.status == RUNNING, Prediction.heartbeat_at < cutoff)).all()
    requeued, cancelled = [], []
    for prediction_id, attempt, cancelling in stale:
        if cancelling:  # its worker died while it was being cancelled: cancelled, not run again
            if _update(session, prediction_id, *_owned(attempt), Prediction.heartbeat_at < cutoff, status=CANCELLED,
                       finished_at=utcnow(), heartbeat_at=None):
                cancelled.append(prediction_id)
            continue
        outcome = requeue_or_fail(session, prediction_id, attempt, f"no heartbeat for {stale_after_seconds:.0f} s",
                                  max_attempts, Prediction.heartbeat_at < cutoff,
                                  retry_in=retry_delay(attempt, *backoff))
        if outcome == QUEUED:
            requeued.append(prediction_id)
    return requeued, cancelled


def backoff_over():
    return or_(Prediction.not_before.is_(None), Prediction.not_before <= utcnow())


def runnable(session: Session, limit: int = 10) -> list[tuple[str, object]]:
    """Queued predictions past their retry backoff, oldest first: ``(id, created_at)``."""
    return list(session.exec(select(Prediction.id, Prediction.created_at)
                             .where(Prediction.status == QUEUED, backoff_over())
                             .order_by(Prediction.created_at, Prediction.id).limit(limit)).all())


def pending_dispatch(session: Session) -> list[str]:
    """Queued predictions whose message the broker has not taken yet, backoff over, oldest first."""
    return list(session.exec(select(Prediction.id).where(Prediction.status == QUEUED, Prediction.dispatch_pending,
                                                         backoff_over()).order_by(Prediction.created_at)).all())


def redispatch_queued(session: Session) -> int:
    """The broker lost its messages: every queued prediction goes back to ``dispatch_pending``, so
    the next round sends it again (one whose message survived gets two; only one claim wins)."""
    result = session.execute(update(Prediction).where(Prediction.status == QUEUED,
                                                      Prediction.dispatch_pending.is_(False))
                             .values(dispatch_pending=True))
    session.commit()
    return result.rowcount


def mark_dispatched(session: Session, prediction_id: str) -> bool:
    return _update(session, prediction_id, Prediction.dispatch_pending, dispatch_pending=False)
