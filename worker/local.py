"""The embedded dispatcher's runner: the job table is the queue, one job at a time, each in a
spawned child process (never inside the web process; a crash or a CUDA context dies with it).

Supervision (docs/architecture.md, "The local runner's supervision"): every child dies with the
`deepclust serve` process (worker/supervision.py); on start the runner requeues the running jobs
that this host's previous runner left behind; and one child is kept warm, torch imported and
waiting on a pipe for its job, so a claimed job starts at once.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading

from sqlmodel import select

from deepclust.app.core import joblog, jobstate, predictionstate
from deepclust.app.core.db import engine_for, new_session
from deepclust.app.core.predictionstate import is_prediction
from deepclust.app.core.settings import Settings
from deepclust.app.core.storage import prediction_prefix, store_for
from deepclust.app.core.tables import CANCELLED, FAILED, QUEUED, RUNNING, Job, Prediction
from deepclust.worker.supervision import die_with_parent, pid_alive

log = logging.getLogger(__name__)


def _job_process(parent_pid: int, jobs, settings: dict) -> None:
    """A job's process: supervised, then warm (torch imported), then the one job sent on ``jobs``."""
    die_with_parent(parent_pid)
    # Ctrl-C in a terminal reaches the whole process group; whether this process stops is the
    # runner's call (it terminates it when serve stops, and says what became of the job).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [job] %(message)s")
    from deepclust.worker.run import run_job  # torch is imported here, in the child only, before any job is given

    try:
        job_id, attempt = jobs.recv()
    except EOFError:  # the runner closed the pipe: no job for this one
        return
    jobs.close()
    if is_prediction(job_id):  # a batch prediction runs in a job's process, one at a time like jobs
        from deepclust.worker.predict import run_prediction

        run_prediction(job_id, Settings(**settings), attempt=attempt)
        return
    run_job(job_id, Settings(**settings), attempt=attempt)


class LocalRunner(threading.Thread):
    def __init__(self, settings: Settings):
        super().__init__(name="deepclust-runner", daemon=True)
        self.settings = settings
        self.engine = engine_for(settings.database_url)
        self.store = store_for(settings.data_dir)
        self._stop_event = threading.Event()
        self._context = multiprocessing.get_context("spawn")  # never fork: the parent may hold threads and locks
        self._warm = None  # (process, the pipe's sending end): the next job's process, started ahead

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def run(self) -> None:
        started = False
        try:
            while not self._stop_event.is_set():
                try:
                    if not started:
                        self.requeue_orphans()
                        self._warm_up()
                        started = True
                    if not self.run_next():
                        self._stop_event.wait(self.settings.runner_poll_seconds)
                except Exception:  # e.g. the database is briefly unavailable; keep the runner alive
                    log.exception("local runner round failed")
                    self._stop_event.wait(max(1.0, self.settings.runner_poll_seconds))
        finally:
            self.close()

    def close(self) -> None:
        """End the warm process, if any: a stopped runner leaves no process behind."""
        if self._warm is None:
            return
        child, jobs = self._warm
        self._warm = None
        jobs.close()
        child.terminate()
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()

    def runnable(self, limit: int = 10) -> list[str]:
        """The queued jobs this runner may take, oldest first: neither held (``waits_for``) nor in
        their retry backoff (``not_before``)."""
        with new_session(self.engine) as session:
            return list(session.exec(select(Job.id).where(Job.status == QUEUED, Job.waits_for.is_(None),
                                                          jobstate.backoff_over())
                                     .order_by(Job.created_at, Job.id).limit(limit)).all())

    def run_next(self) -> bool:
        """Run the oldest queued job that is neither held (``waits_for``) nor in its retry backoff
        (``not_before``) to its end; False when there was none.

        The runner claims the job itself, so it shows running at once, and hands it to the warm
        process, which adopts the claim (recording its pid); the next warm process starts then.
        """
        job_id = self._oldest()
        if job_id is None:
            return False
        state = predictionstate if is_prediction(job_id) else jobstate
        child, jobs = self._take_warm()  # before the claim: a claimed job never waits for a process to exist
        with new_session(self.engine) as session:
            job = state.claim(session, job_id, jobstate.worker_name())
        if job is None:  # cancelled, or taken by another runner, since the select: keep the process for the next
            self._warm = (child, jobs)
            return True
        try:
            jobs.send((job_id, job.attempts))
        except OSError:
            pass  # it died since it was found alive: its exit status and the job's row tell _recover the rest
        jobs.close()
        self._warm_up()
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

    def _oldest(self) -> str | None:
        """The oldest runnable job or batch prediction (they share the runner, one at a time)."""
        jobs = self.runnable(limit=1)
        with new_session(self.engine) as session:
            predictions = predictionstate.runnable(session, limit=1)
        if not predictions:
            return jobs[0] if jobs else None
        if jobs:
            with new_session(self.engine) as session:
                created = session.get(Job, jobs[0]).created_at
            if created <= predictions[0][1]:
                return jobs[0]
        return predictions[0][0]

    def _warm_up(self) -> None:
        """Start the next job's process now, so it has imported torch by the time a job comes."""
        if self._warm is None and not self._stop_event.is_set():
            self._warm = self._spawn()

    def _spawn(self):
        """A job process waiting for its job on a pipe: (process, the pipe's sending end).

        Called from the runner's own thread only: the kernel kills a child when the *thread* that
        spawned it ends (worker/supervision.py), and this thread outlives its children."""
        receiving, sending = self._context.Pipe(duplex=False)
        child = self._context.Process(target=_job_process, name="deepclust-job",
                                      args=(os.getpid(), receiving, self.settings.model_dump(mode="json")))
        child.start()
        receiving.close()  # the child has its own copy; ours would keep the pipe open after it is gone
        return child, sending

    def _take_warm(self):
        """The warm process, or a new one if there is none or it died waiting (a process that died
        idle is replaced only when a job needs one, so one that cannot start does not respawn in a loop)."""
        if self._warm is not None and not self._warm[0].is_alive():
            child, jobs = self._warm
            self._warm = None
            jobs.close()
            child.join()
            log.warning("the waiting job process (pid %s) exited with code %s before it was given a job; "
                        "starting another", child.pid, child.exitcode)
        warm, self._warm = self._warm or self._spawn(), None
        return warm

    def requeue_orphans(self) -> list[str]:
        """Requeue (resuming from the checkpoint) or fail, by the attempt rules, the running jobs this
        host's previous runner left: their ``worker`` is this hostname with a pid that no longer runs
        (the runner's own, between claim and adoption, or its job process's). Returns their ids.

        The hostname is what keeps another host's jobs out (a pid means nothing there), so hosts
        sharing a database must have distinct hostnames. A live pid is left alone: another serve
        on this host, or an unrelated process that took the pid (the reaper gets to that job).
        """
        host = socket.gethostname()
        with new_session(self.engine) as session:
            running = session.exec(select(Job.id, Job.attempts, Job.worker, Job.cancel_requested, Job.checkpoint_key)
                                   .where(Job.status == RUNNING, Job.worker.startswith(f"{host}:", autoescape=True))
                                   ).all()
            requeued = []
            for job_id, attempt, worker, cancel_requested, checkpoint in running:
                name, _, pid = worker.rpartition(":")
                if name != host or not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
                    continue
                reason = f"its process (pid {pid}) ended with the server that ran it"
                if cancel_requested:
                    if jobstate.finish(session, job_id, attempt, CANCELLED):
                        if checkpoint:
                            self.store.delete_prefix(checkpoint)
                        self._note(job_id, logging.INFO, f"{reason} while it was being cancelled; it is cancelled")
                    continue
                # Guarded by the worker too: only the attempt of the process we found dead.
                outcome = jobstate.requeue_or_fail(session, job_id, attempt, reason, self.settings.max_attempts,
                                                   Job.worker == worker)
                if outcome == QUEUED:
                    requeued.append(job_id)
                    self._note(job_id, logging.WARNING, f"{reason}; it goes back to the queue and resumes from its "
                               f"checkpoint (attempt {attempt} of {self.settings.max_attempts})")
                elif outcome is not None:
                    self._note(job_id, logging.ERROR, f"{reason}; {outcome} after {attempt} attempts")
            requeued += self._requeue_orphan_predictions(session, host)
        return requeued

    def _requeue_orphan_predictions(self, session, host: str) -> list[str]:
        """``requeue_orphans`` for batch predictions: the same rules, on their table."""
        running = session.exec(select(Prediction.id, Prediction.attempts, Prediction.worker,
                                      Prediction.cancel_requested)
                               .where(Prediction.status == RUNNING,
                                      Prediction.worker.startswith(f"{host}:", autoescape=True))).all()
        requeued = []
        for prediction_id, attempt, worker, cancel_requested in running:
            name, _, pid = worker.rpartition(":")
            if name != host or not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
                continue
            reason = f"its process (pid {pid}) ended with the server that ran it"
            if cancel_requested:
                if predictionstate.finish(session, prediction_id, attempt, CANCELLED):
                    self.store.delete_prefix(prediction_prefix(prediction_id))
                    self._note(prediction_id, logging.INFO, f"{reason} while it was being cancelled; it is cancelled")
                continue
            outcome = predictionstate.requeue_or_fail(session, prediction_id, attempt, reason,
                                                      self.settings.max_attempts, Prediction.worker == worker)
            if outcome == QUEUED:
                requeued.append(prediction_id)
                self._note(prediction_id, logging.WARNING, f"{reason}; it goes back to the queue and resumes after "
                           f"the rows already predicted (attempt {attempt} of {self.settings.max_attempts})")
            elif outcome is not None:
                self._note(prediction_id, logging.ERROR, f"{reason}; {outcome} after {attempt} attempts")
        return requeued

    def _recover(self, job_id: str, attempt: int, child, stopped: str | None) -> None:
        reason = stopped or f"the worker process exited with code {child.exitcode}"
        if is_prediction(job_id):
            self._recover_prediction(job_id, attempt, child, reason, stopped)
            return
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

    def _recover_prediction(self, prediction_id: str, attempt: int, child, reason: str, stopped: str | None) -> None:
        """``_recover`` for a batch prediction whose process ended: cancelled if a cancel was asked,
        else back to the queue (the next attempt resumes after the rows stored) or failed past the
        attempts; one that died before it took the prediction fails rather than crash-loop."""
        with new_session(self.engine) as session:
            row = session.get(Prediction, prediction_id)
            if row is None or row.status != RUNNING or row.attempts != attempt:
                return
            if row.cancel_requested:
                predictionstate.finish(session, prediction_id, attempt, CANCELLED)
                self.store.delete_prefix(prediction_prefix(prediction_id))
                self._note(prediction_id, logging.INFO, f"{reason} while it was being cancelled; it is cancelled")
            elif row.worker == f"{socket.gethostname()}:{child.pid}" or stopped:
                outcome = predictionstate.requeue_or_fail(session, prediction_id, attempt, reason,
                                                          self.settings.max_attempts)
                self._note(prediction_id, logging.WARNING if outcome == QUEUED else logging.ERROR,
                           f"{reason}; it goes back to the queue and resumes after the rows already predicted "
                           f"(attempt {attempt} of {self.settings.max_attempts})" if outcome == QUEUED
                           else f"{reason}; {outcome} after {attempt} attempts")
            else:
                predictionstate.finish(session, prediction_id, attempt, FAILED,
                                       error={"code": "worker_crashed", "message": f"{reason} before it started"})
                self._note(prediction_id, logging.ERROR, f"{reason} before it started; marked failed")

    def _note(self, job_id: str, level: int, message: str) -> None:
        """In the server's log and in the job's own (GET /v1/jobs/{id}/logs)."""
        log.log(level, "job %s: %s", job_id, message)
        joblog.append(self.store, job_id, message, logging.getLevelName(level))
