"""The training callback of a job: progress, history, heartbeat, checkpoints and cancel, via the DB.

Writes are throttled (a tiny dataset can finish an epoch every few milliseconds) and fenced by
the attempt number, so a worker that lost its job notices on its next write and stops. While the
database is unreachable, training goes on: history rows stay pending and progress is written by
the first flush that gets through. The job's runtime limit is enforced where cancel is read.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

import numpy as np
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import select

from deepclust.app.core import jobstate
from deepclust.app.core.db import new_session, utcnow
from deepclust.app.core.settings import Settings
from deepclust.app.core.storage import ArtifactStore, checkpoint_key
from deepclust.app.core.tables import Job, JobHistory
from deepclust.models import FINALIZE, FINETUNE, INIT, PRETRAIN, Callback, save_checkpoint
from deepclust.models.metrics import cluster_accuracy, nmi
from deepclust.worker.failures import is_infrastructure

log = logging.getLogger(__name__)

# Where each phase sits in the job's overall progress fraction. A phase not listed here (a
# method's own) keeps the fraction reached so far.
PHASE_SPANS = {PRETRAIN: (0.0, 0.5), INIT: (0.5, 0.55), FINETUNE: (0.55, 0.95), FINALIZE: (0.95, 1.0)}


class JobReporter(Callback):
    def __init__(self, engine: Engine, job: Job, settings: Settings, store: ArtifactStore,
                 y_true: np.ndarray | None):
        self.engine, self.settings, self.store, self.y_true = engine, settings, store, y_true
        self.job_id, self.attempt = job.id, job.attempts
        self.has_checkpoint = job.checkpoint_key is not None
        self.session = new_session(engine)  # the training thread's; the heartbeat thread has its own
        self.lost = threading.Event()
        self.cancelled = False
        self.phase: str | None = None
        self.progress: dict = {}
        self.pending: list[dict] = []
        self._evaluation: dict[str, dict] = {}  # phase -> scores of its latest labels
        self._last_flush = 0.0
        self._last_checkpoint = time.monotonic()
        self._unreachable_since: float | None = None
        # The runtime limit counts from the start of this attempt.
        self.max_runtime_s = job.max_runtime_s or settings.max_runtime_seconds
        self.started = time.monotonic()
        self.runtime_exceeded = False

    # -- the library's hooks ----------------------------------------------------------------------
    def on_phase_begin(self, phase: str, epochs: int) -> None:
        self.enter_phase(phase, epochs)

    def on_epoch_end(self, phase: str, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        terms = {k: float(v) for k, v in logs.items() if k != "loss"}
        terms.update(self._evaluation.get(phase, {}))
        self.pending.append({"job_id": self.job_id, "phase": phase, "epoch": epoch,
                             "loss": float(logs["loss"]) if "loss" in logs else None, "terms": terms})
        lo, hi = self._span(phase)
        self.progress = {"epoch": epoch + 1, "epochs": epochs, "fraction": round(lo + (hi - lo) * (epoch + 1) / epochs, 4),
                         "loss": self.pending[-1]["loss"], "label_change": logs.get("label_change")}
        self.flush()

    def on_labels(self, phase: str, iteration: int, labels: np.ndarray, label_change: float | None) -> None:
        # Labels never reach the library; the worker scores each phase's latest labels against
        # them, and that phase's next history rows carry the scores.
        if self.y_true is not None:
            self._evaluation[phase] = {"acc": cluster_accuracy(self.y_true, labels), "nmi": nmi(self.y_true, labels)}

    def should_stop(self) -> bool:
        if self.lost.is_set():
            return True
        if self.max_runtime_s is not None and time.monotonic() - self.started > self.max_runtime_s:
            self.runtime_exceeded = True
            return True
        try:
            row = self.session.exec(select(Job.cancel_requested, Job.status, Job.attempts)
                                    .where(Job.id == self.job_id)).first()
            self.session.rollback()  # end the read transaction so the next check sees fresh data
        except Exception as exc:
            if not is_infrastructure(exc):
                raise
            self._unreachable(exc)
            return False  # keep training; the next epoch asks again
        if row is None or row[1] != "running" or row[2] != self.attempt:
            self.lost.set()
            return True
        self.cancelled = bool(row[0])
        return self.cancelled

    def on_k_selected(self, selection) -> None:
        """n_clusters "auto": the job's K and its evidence, as soon as they are known."""
        log.info("job %s: K = %d estimated without labels (%s over K in %d..%d)", self.job_id, selection.chosen,
                 selection.criterion, selection.table[0]["n_clusters"], selection.table[-1]["n_clusters"])
        try:
            self._write(n_clusters=int(selection.chosen), k_selection=selection.to_dict())
        except Exception as exc:  # the results write them again
            if not is_infrastructure(exc):
                raise
            self._unreachable(exc)

    def checkpoint_due(self) -> bool:
        """Only every ``checkpoint_interval_seconds``: in between the loop does not copy the model
        to the host at all."""
        return time.monotonic() - self._last_checkpoint >= self.settings.checkpoint_interval_seconds

    def on_checkpoint(self, state: dict) -> None:
        if not self.checkpoint_due():
            return
        key = checkpoint_key(self.job_id)
        with self.store.staging_file(".pt") as tmp:
            save_checkpoint(state, tmp)
            self.store.publish(tmp, key)
        self._last_checkpoint = time.monotonic()
        if not self.has_checkpoint:
            try:
                self._write(checkpoint_key=key)
            except Exception as exc:  # the row learns of the file with a later checkpoint
                if not is_infrastructure(exc):
                    raise
                self._unreachable(exc)
                return
            self.has_checkpoint = True

    # -- writing ------------------------------------------------------------------------------------
    def enter_phase(self, phase: str, epochs: int = 1) -> None:
        if self.phase is not None:
            ended = self.progress
            loss = f", loss {ended['loss']:.6g}" if ended.get("loss") is not None else ""
            done = f" after {ended['epoch']} of {ended.get('epochs')} epochs" if ended.get("epoch") else ""
            log.info("job %s: %s ended%s%s", self.job_id, self.phase, done, loss)
        bound = "at most " if phase == FINETUNE else ""  # it stops sooner once few labels change
        log.info("job %s: %s begins (%s%d epoch%s)", self.job_id, phase, bound, epochs, "" if epochs == 1 else "s")
        # Finalizing has no loss of its own: it keeps showing the last one of training.
        last = self.progress if phase == FINALIZE else {}
        self.phase = phase
        self.progress = {"epoch": 0, "epochs": epochs, "fraction": self._span(phase)[0],
                         "loss": last.get("loss"), "label_change": last.get("label_change")}
        self.flush(force=True)

    def _span(self, phase: str) -> tuple[float, float]:
        fraction = self.progress.get("fraction", 0.0)
        return PHASE_SPANS.get(phase, (fraction, fraction))

    def flush(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_flush < self.settings.progress_interval_seconds:
            return
        self._last_flush = time.monotonic()  # also after a failed try: an unreachable database is asked at this pace
        try:  # the rows and the progress in one transaction: both written, or both pending still
            if self.pending:
                self.session.execute(insert(JobHistory), self.pending)
            self._write(phase=self.phase, progress=self.progress, heartbeat_at=utcnow())
        except Exception as exc:
            if not is_infrastructure(exc):
                raise
            self._unreachable(exc)
            return
        self.pending = []
        if self._unreachable_since is not None:
            log.info("job %s: the database answers again after %.0f s; progress and history caught up",
                     self.job_id, time.monotonic() - self._unreachable_since)
            self._unreachable_since = None

    def _unreachable(self, exc: Exception) -> None:
        try:
            self.session.rollback()
        except Exception:  # the connection is gone; the pool gives the next statement a fresh one
            pass
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            log.warning("job %s: the database is unreachable (%s); training goes on, progress is written once it "
                        "answers", self.job_id, type(exc).__name__)

    def runtime_error(self) -> dict:
        """The job's ``error`` once its runtime limit stopped it."""
        where = f"{self.phase} epoch {self.progress.get('epoch')} of {self.progress.get('epochs')}" if self.phase else "start"
        return {"code": "runtime_exceeded",
                "message": f"Stopped after {time.monotonic() - self.started:.0f} s (at {where}): past the job's "
                           f"runtime limit of {self.max_runtime_s} s. Raise max_runtime_s, or make the job shorter "
                           "(fewer epochs, a smaller maxiter, a smaller dataset)."}

    def _write(self, **values) -> None:
        if not jobstate.update_owned(self.session, self.job_id, self.attempt, **values):
            self.session.rollback()
            self.lost.set()

    @contextmanager
    def heartbeat(self):
        """Keep heartbeat_at fresh from a thread, also through long silent steps (k-means, big epochs)."""
        stop = threading.Event()

        def beat() -> None:
            with new_session(self.engine) as session:
                while not stop.wait(self.settings.heartbeat_seconds):
                    try:
                        if not jobstate.update_owned(session, self.job_id, self.attempt, heartbeat_at=utcnow()):
                            self.lost.set()
                            return
                    except Exception:  # a database blip: the next beat may get through
                        session.rollback()
                        log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.job_id}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.session.close()
