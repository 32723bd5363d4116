"""The Celery app of the production worker.

    celery -A deepclust.worker.celery_app worker -Q gpu --concurrency=1   (or: deepclust worker)

Its task takes a job id and calls `run_job` (a batch prediction's task, a prediction id and
`run_prediction`); the job row, not Celery's result backend, holds
the outcome. torch is imported inside the task, so the prefork parent never touches CUDA. A
database that cannot be reached before the job is claimed sends the message again with a backoff
(Celery's retry, a countdown): acknowledging it would leave the job queued with no message.
"""
from __future__ import annotations

from celery import Celery

from deepclust.app.core.dispatch import PREDICTION_TASK_NAME, TASK_NAME, celery_config
from deepclust.app.core.jobstate import retry_delay
from deepclust.app.core.settings import get_settings

app = Celery("deepclust")
app.conf.update(celery_config(get_settings()))


@app.task(name=TASK_NAME, bind=True, max_retries=None)
def run_job_task(self, job_id: str) -> None:
    from deepclust.worker.run import run_job

    _run_or_retry(self, run_job, job_id)


@app.task(name=PREDICTION_TASK_NAME, bind=True, max_retries=None)
def run_prediction_task(self, prediction_id: str) -> None:
    """A batch prediction, retried like a job's task while the database cannot be reached before the claim."""
    from deepclust.worker.predict import run_prediction

    _run_or_retry(self, run_prediction, prediction_id)


def _run_or_retry(task, run, row_id: str) -> None:
    """``run(row_id)``; an infrastructure failure (database, storage unreachable) is retried.
    Past the claim ``run`` handles such failures itself, so this is a row not taken yet (a copy
    sent while it runs claims nothing); the retry's backoff grows to its cap."""
    from deepclust.worker.failures import is_infrastructure

    try:
        run(row_id)
    except Exception as exc:
        if not is_infrastructure(exc):
            raise
        settings = get_settings()
        raise task.retry(exc=exc, countdown=retry_delay(task.request.retries + 1, settings.retry_backoff_seconds,
                                                        settings.retry_backoff_max_seconds)) from None
