"""The worker side: `run_job(job_id)` and the two ways it is dispatched (local runner, Celery)."""
