"""The embedded dispatcher's runner: the job table is the queue, one job at a time, each in a
spawned child process (never inside the web process; a crash or a CUDA context dies with it)."""
from __future__ import annotations

import logging
import multiprocessing
import socket
import threading

from sqlmodel import select

from app.core import joblog, jobstate
from app.core.db import engine_for, new_session
from app.core.settings import Settings
from app.core.storage import store_for
from app.core.tables import CANCELLED, FAILED, QUEUED, RUNNING, Job

log = logging.getLogger(__name__)


def _run_in_child(job_id: str, attempt: int, settings: dict) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [job] %(message)s")
    from worker.run import run_job  # torch is imported here, in the child only

    run_job(job_id, Settings(**settings), attempt=attempt)


class LocalRunner(threading.Thread):
    def __init__(self, settings: Settings):
        super().__init__(name="deepclust-runner", daemon=True)
        self.settings = settings
        self.engine = engine_for(settings.database_url)
        self.store = store_for(settings.data_dir)
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
        """Run the oldest queued job that is not held (``waits_for``) to its end; False when there was none.

        The runner claims the job before it spawns the child (which takes seconds to import
        torch), so the job shows running at once; the child adopts the claim, recording its pid.
        """
        with new_session(self.engine) as session:
            job_id = session.exec(select(Job.id).where(Job.status == QUEUED, Job.waits_for.is_(None))
                                  .order_by(Job.created_at, Job.id).limit(1)).first()
            if job_id is None:
                return False
            job = jobstate.claim(session, job_id, jobstate.worker_name())
        if job is None:  # cancelled, or taken by another runner, since the select
            return True
        child = self._context.Process(target=_run_in_child, name=f"deepclust-{job_id}",
                                      args=(job_id, job.attempts, self.settings.model_dump(mode="json")))
        child.start()
        stopping = False
        while child.is_alive():
            child.join(0.5)
            if self._stop_event.is_set() and not stopping:
                stopping = True
                child.terminate()
                child.join()
        if child.exitcode != 0:
            self._recover(job_id, job.attempts, child, "the server stopped" if stopping else None)
        return True

    def _recover(self, job_id: str, attempt: int, child, stopped: str | None) -> None:
        reason = stopped or f"the worker process exited with code {child.exitcode}"
        with new_session(self.engine) as session:
            job = session.get(Job, job_id)
            if job.status != RUNNING or job.attempts != attempt:
                return  # it ended (or moved on) before the process went
            if job.cancel_requested:
                jobstate.finish(session, job_id, attempt, CANCELLED)
                if job.checkpoint_key:
                    self.store.delete_prefix(job.checkpoint_key)
                self._note(job_id, logging.INFO, f"{reason} while it was being cancelled; it is cancelled")
            elif job.worker == f"{socket.gethostname()}:{child.pid}":
                outcome = jobstate.requeue_or_fail(session, job_id, attempt, reason, self.settings.max_attempts)
                if outcome == QUEUED:
                    self._note(job_id, logging.WARNING, f"{reason}; it goes back to the queue and resumes from its "
                               f"checkpoint (attempt {attempt} of {self.settings.max_attempts})")
                else:
                    self._note(job_id, logging.ERROR, f"{reason}; {outcome} after {attempt} attempts")
            elif stopped:  # stopped before the process took the job: it never started, so back to the queue
                jobstate.requeue_or_fail(session, job_id, attempt, reason, max_attempts=attempt + 1)
                self._note(job_id, logging.INFO, f"{reason} before it started; it goes back to the queue")
            else:
                # It died before taking the job: running it again would die again.
                jobstate.finish(session, job_id, attempt, FAILED,
                                error={"code": "worker_crashed", "message": f"{reason} before the job started"})
                self._note(job_id, logging.ERROR, f"{reason} before it started; marked failed")

    def _note(self, job_id: str, level: int, message: str) -> None:
        """In the server's log and in the job's own (GET /v1/jobs/{id}/logs)."""
        log.log(level, "job %s: %s", job_id, message)
        joblog.append(self.store, job_id, message, logging.getLevelName(level))
