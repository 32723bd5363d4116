"""The embedded dispatcher's runner: the job table is the queue, one job at a time, each in a
spawned child process (never inside the web process; a crash or a CUDA context dies with it)."""
from __future__ import annotations

import logging
import multiprocessing
import socket
import threading

from sqlmodel import select

from app import jobstate
from app.db import engine_for, new_session
from app.settings import Settings
from app.tables import QUEUED, RUNNING, Job

log = logging.getLogger(__name__)


def _run_in_child(job_id: str, settings: dict) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [job] %(message)s")
    from worker.run import run_job  # torch is imported here, in the child only

    run_job(job_id, Settings(**settings))


class LocalRunner(threading.Thread):
    def __init__(self, settings: Settings):
        super().__init__(name="deepclust-runner", daemon=True)
        self.settings = settings
        self.engine = engine_for(settings.database_url)
        self._stop_event = threading.Event()
        self._context = multiprocessing.get_context("spawn")

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                if not self.run_next():
                    self._stop_event.wait(self.settings.runner_poll_seconds)
            except Exception:  # e.g. the database is briefly unavailable; keep the runner alive
                log.exception("local runner round failed")
                self._stop_event.wait(max(1.0, self.settings.runner_poll_seconds))

    def run_next(self) -> bool:
        """Run the oldest queued job to its end; False when there was none."""
        with new_session(self.engine) as session:
            queued = session.exec(select(Job.id, Job.attempts).where(Job.status == QUEUED)
                                  .order_by(Job.created_at, Job.id).limit(1)).first()
        if queued is None:
            return False
        job_id, attempts = queued
        child = self._context.Process(target=_run_in_child, name=f"deepclust-{job_id}",
                                      args=(job_id, self.settings.model_dump(mode="json")))
        child.start()
        while child.is_alive():
            child.join(0.5)
            if self._stop_event.is_set():
                log.info("stopping: job %s goes back to the queue and resumes from its checkpoint", job_id)
                child.terminate()
                child.join()
        if child.exitcode != 0:
            self._recover(job_id, attempts, child)
        return True

    def _recover(self, job_id: str, attempts_before: int, child) -> None:
        reason = f"the worker process exited with code {child.exitcode}"
        with new_session(self.engine) as session:
            job = session.get(Job, job_id)
            if job.status == RUNNING and job.worker == f"{socket.gethostname()}:{child.pid}":
                outcome = jobstate.requeue_or_fail(session, job_id, job.attempts, reason, self.settings.max_attempts)
                log.warning("job %s: %s; now %s", job_id, reason, outcome)
            elif job.status == QUEUED and job.attempts == attempts_before:
                # It died before claiming the job: running it again would die again.
                jobstate.fail_queued(session, job_id, {"code": "worker_crashed", "message": reason})
                log.error("job %s: %s before it started; marked failed", job_id, reason)
