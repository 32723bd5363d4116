"""How a committed job reaches a worker: `submit(job_id)` and `health()`, two implementations.

- local: the job table is the queue. `deepclust serve` runs a runner (worker/local.py) that polls
  it, so submitting is nothing at all.
- celery: the task is sent *by name* (the API never imports the worker or torch) to the
  configured queue of the broker, after the job row is committed.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from deepclust.app.core.settings import Settings

TASK_NAME = "deepclust.run_job"
PREDICTION_TASK_NAME = "deepclust.run_prediction"  # a batch prediction (POST /v1/predictions)


class BrokerUnavailable(RuntimeError):
    pass


def send_or_undo(session, rows: Iterable, send: Callable[[], None]) -> None:
    """Run ``send`` (hand the committed ``rows`` to the workers: only after the commit, so that a
    worker finds them); when the broker does not take them, delete the rows again, so that nothing
    half-made stays, and raise BrokerUnavailable (the API's 503 ``broker_unavailable``)."""
    try:
        send()
    except BrokerUnavailable:
        for row in rows:
            session.delete(row)
        session.commit()
        raise


class Dispatcher(Protocol):
    def submit(self, job_id: str) -> None: ...
    def submit_prediction(self, prediction_id: str) -> None: ...
    def health(self) -> str | None: ...  # None when healthy, else what is wrong
    def messages_lost(self) -> bool: ...  # True once after the broker lost the messages it held


class LocalDispatcher:
    def submit(self, job_id: str) -> None:
        """Nothing to send: the runner picks queued rows in creation order."""

    def submit_prediction(self, prediction_id: str) -> None:
        """Nothing to send: the runner picks queued predictions like queued jobs."""

    def health(self) -> str | None:
        return None  # the queue is the database, which /readyz checks on its own

    def messages_lost(self) -> bool:
        return False  # the queue is the database


def celery_config(settings: Settings) -> dict:
    """Celery settings shared by the API's sender and the worker (DESIGN.md, "Running")."""
    return {
        "broker_url": settings.broker_url,
        "task_default_queue": settings.queue,
        "task_acks_late": True,  # a task is acknowledged when done, so a dead worker's job is redelivered
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,  # the job row is the result
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": 1,  # every job in a fresh child: no CUDA state carried over
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        # Redis redelivers an unacknowledged task after this; it must outlast the longest job,
        # and a lost worker is noticed sooner by the reaper (stale heartbeat) anyway.
        "broker_transport_options": {"visibility_timeout": settings.max_job_seconds + 3600},
    }


class CeleryDispatcher:
    def __init__(self, settings: Settings):
        from celery import Celery

        self.queue = settings.queue
        self.app = Celery("deepclust-api", set_as_current=False)
        self.app.conf.update(celery_config(settings))

    def submit(self, job_id: str, task: str = TASK_NAME) -> None:
        try:
            self.app.send_task(task, args=[job_id], queue=self.queue, retry=True,
                               retry_policy={"max_retries": 2, "interval_start": 0.2,
                                             "interval_step": 0.2, "interval_max": 0.5})
        except Exception as exc:  # kombu raises transport-specific errors
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def submit_prediction(self, prediction_id: str) -> None:
        self.submit(prediction_id, PREDICTION_TASK_NAME)

    def health(self) -> str | None:
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            return None
        except Exception as exc:
            return f"broker unreachable: {type(exc).__name__}: {exc}"

    def messages_lost(self) -> bool:
        """True once after Redis lost what it held (restarted without persistence, or flushed): a
        marker key kept next to the queue is gone with the messages, and setting it again answers
        True to exactly one caller. Other brokers (AMQP's durable queues) answer False."""
        try:
            with self.app.connection_for_write() as conn:
                if conn.transport.driver_type != "redis":
                    return False
                if not conn.default_channel.client.set(f"deepclust:{self.queue}:alive", "1", nx=True):
                    return False
                # The queue's binding went with the rest, and a publisher that believes it declared
                # the queue already would route its messages nowhere: declare it again first.
                self.app.amqp.queues[self.queue](conn.default_channel).declare()
                return True
        except Exception as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc


def make_dispatcher(settings: Settings) -> Dispatcher:
    return CeleryDispatcher(settings) if settings.dispatcher == "celery" else LocalDispatcher()


_SHARED: dict[tuple, Dispatcher] = {}
_SHARED_LOCK = threading.Lock()


def dispatcher_for(settings: Settings) -> Dispatcher:
    """One dispatcher per process and broker, made on first use: a worker releases a sweep's
    held jobs after every job it runs, and a Celery app (with its connection pool) per job
    would be built and thrown away each time."""
    key = (settings.dispatcher, settings.broker_url, settings.queue)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = make_dispatcher(settings)
        return _SHARED[key]
