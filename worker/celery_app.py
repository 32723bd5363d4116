"""The Celery app of the production worker.

    celery -A worker.celery_app worker -Q gpu --concurrency=1   (or: deepclust worker)

Its one task takes a job id and calls `run_job`; the job row, not Celery's result backend, holds
the outcome. torch is imported inside the task, so the prefork parent never touches CUDA.
"""
from __future__ import annotations

from celery import Celery

from app.core.dispatch import TASK_NAME, celery_config
from app.core.settings import get_settings

app = Celery("deepclust")
app.conf.update(celery_config(get_settings()))


@app.task(name=TASK_NAME)
def run_job_task(job_id: str) -> None:
    from worker.run import run_job

    run_job(job_id)
