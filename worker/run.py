"""`run_job(job_id)`: the one entry point for executing a job, whoever dispatched it.

Claim (guarded: a second delivery is a no-op), memory-map the dataset, train through the library
with the reporting callback, then store model, centroids, assignments, metrics and the final
history in one transaction. Idempotent: a finished or running job is left alone.

A failure of the job's own fails it once with a code (worker/failures.py); an unreachable
database is waited for (the results, the final status) and, past ``db_retry_seconds``, the
attempt goes back to the queue with a backoff, up to ``max_attempts``.
"""
from __future__ import annotations

import json
import logging

import numpy as np
from sqlalchemy import delete, insert
from sqlmodel import Session, select

from deepclust.app.core import joblog, jobstate, results, sweepstate
from deepclust.app.core.db import engine_for, new_session, utcnow
from deepclust.app.core.dispatch import dispatcher_for
from deepclust.app.core.ids import new_id
from deepclust.app.core.npyfile import open_array
from deepclust.app.core.settings import Settings, get_settings
from deepclust.app.core.storage import checkpoint_key, store_for
from deepclust.app.core.tables import (
    CANCELLED,
    FAILED,
    QUEUED,
    SUCCEEDED,
    Dataset,
    Job,
    JobHistory,
    Sweep,
    SweepJob,
)
from deepclust.models import DeepClusterer, TrainingCancelled, load_checkpoint
from deepclust.models.k_estimation import stadion_of_partition
from deepclust.models.metrics import clustering_report
from deepclust.worker import environment
from deepclust.worker.encode import Encoded, encode
from deepclust.worker.failures import is_infrastructure, job_error, retry_while_unreachable
from deepclust.worker.reporting import PHASE_SPANS, JobReporter

log = logging.getLogger(__name__)
RETRY = "retry"  # the attempt ended for the infrastructure's reason: requeue it, not fail it


def run_job(job_id: str, settings: Settings | None = None, attempt: int | None = None) -> str | None:
    """Run the job if it can be claimed; returns its final status, or None if it was not ours.

    ``attempt``: the job was claimed for us already (by the local runner) as this attempt.
    """
    settings = settings or get_settings()
    # A bounded connect: an unreachable database server fails a write in seconds, not minutes.
    engine = engine_for(settings.database_url, connect_timeout=settings.db_connect_timeout_seconds)
    store = store_for(settings.data_dir)
    with new_session(engine) as session:
        if attempt is None:
            job = jobstate.claim(session, job_id, jobstate.worker_name())
        else:
            job = jobstate.adopt(session, job_id, attempt, jobstate.worker_name())
        if job is None:
            log.info("job %s is not queued (already taken, finished or cancelled); nothing to do", job_id)
            return None
        dataset = session.get(Dataset, job.dataset_id)
        resume = _start_history(session, job, store)
    with joblog.capture(store, job_id):
        return _execute(job, dataset, resume, settings, engine, store)


def _execute(job: Job, dataset: Dataset | None, resume: dict | None, settings: Settings, engine, store) -> str | None:
    _log_start(job, dataset, resume, settings)
    y_true = np.load(store.local_path(dataset.labels_key)) if dataset and dataset.labels_key else None
    reporter = JobReporter(engine, job, settings, store, y_true)
    status, values = _attempt(job, dataset, resume, settings, engine, store, reporter, y_true)
    return _record(job, status, values, reporter, settings, engine, store)


def _log_start(job: Job, dataset: Dataset | None, resume: dict | None, settings: Settings) -> None:
    device = settings.device if job.device == "auto" else job.device
    k = f"K estimated in {job.k_range[0]}..{job.k_range[1]}" if job.k_range is not None else f"K={job.n_clusters}"
    log.info("job %s: attempt %d: %s with %s on dataset %s (%s), device %s, seed %d", job.id, job.attempts,
             job.method, k, job.dataset_id,
             f"{dataset.n_samples} samples of shape {dataset.sample_shape}" if dataset else "gone", _device(device),
             job.seed)
    try:
        log.info("job %s: %s", job.id, environment.summary(environment.describe(device)))
    except Exception as exc:  # a description that fails must not fail the job
        log.warning("job %s: could not describe the device %s: %s", job.id, device, exc)
    log.info("job %s: params %s", job.id, json.dumps(job.params, sort_keys=True))
    if resume is not None:
        log.info("job %s: resuming from its checkpoint (%s, after %d epochs)", job.id, resume.get("phase"),
                 len(resume.get("history", [])))


def _attempt(job: Job, dataset: Dataset | None, resume: dict | None, settings: Settings, engine, store,
             reporter: JobReporter, y_true) -> tuple[str, dict]:
    """Train and store the results; what the attempt came to: ``(status, values)`` where status is
    SUCCEEDED (results committed), CANCELLED, FAILED (``values["error"]``) or RETRY
    (``values["reason"]``: the infrastructure's fault). Decides; records nothing but the results."""
    try:
        with reporter.heartbeat():
            if dataset is None:
                raise LookupError(f"dataset {job.dataset_id} no longer exists")
            X = open_array(store.local_path(dataset.data_key))
            encoded = None
            if job.encoder_id is not None:  # the method runs on the encoder's embeddings of the images
                device = settings.device if job.device == "auto" else job.device
                encoded = encode(job, dataset, engine, store, reporter, settings, device)
                X = encoded.X
            estimator = _estimator(job, dataset, settings)
            pretrained = retry_while_unreachable(lambda: _pretrained(engine, job), "reading the pretrained model",
                                                 settings.db_retry_seconds)
            estimator.fit(X, callbacks=[reporter], pretrained=pretrained, resume_from=resume)
            _log_result_health(job, estimator)
            reporter.enter_phase("finalize")
            if _store_results(engine, job, reporter, estimator, X, y_true, settings, encoded):
                return SUCCEEDED, {}
            reporter.lost.set()
            return FAILED, {}
    except TrainingCancelled:
        return (FAILED, {"error": reporter.runtime_error()}) if reporter.runtime_exceeded else (CANCELLED, {})
    except Exception as exc:
        if is_infrastructure(exc):
            log.warning("job %s attempt %d: the infrastructure failed (%s: %s)", job.id, job.attempts,
                        type(exc).__name__, exc)
            return RETRY, {"reason": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        log.exception("job %s failed", job.id)
        return FAILED, {"error": job_error(exc, reporter.phase, job.params)}


def _record(job: Job, status: str, values: dict, reporter: JobReporter, settings: Settings, engine,
            store) -> str | None:
    """Write what the attempt came to (a succeeded job's results are committed already), clean up
    its checkpoint and release what waits for it; None if the job is no longer ours."""
    job_id = job.id
    # Once the results are committed the job is ours for good (a heartbeat racing the commit
    # may still have seen it finished and raised the flag).
    if status != SUCCEEDED and reporter.lost.is_set():
        log.warning("job %s attempt %d lost its claim; leaving the job to its new owner", job_id, job.attempts)
        return None
    if status == RETRY:
        status = _retry_later(engine, settings, job, values["reason"])
        if status != FAILED:  # queued again (its checkpoint kept), or left to the reaper
            return status
    elif status != SUCCEEDED:
        def finish() -> bool:
            with new_session(engine) as session:
                if reporter.pending:
                    session.execute(insert(JobHistory), reporter.pending)
                return jobstate.finish(session, job_id, job.attempts, status, **values)

        try:
            if not retry_while_unreachable(finish, f"recording job {job_id} {status}", settings.db_retry_seconds):
                log.warning("job %s attempt %d lost its claim; leaving the job to its new owner", job_id, job.attempts)
                return None
        except Exception as exc:
            if not is_infrastructure(exc):
                raise
            log.error("job %s: the database stayed unreachable; the reaper will requeue the job", job_id)
            return None
    if status == FAILED and "error" in values:
        log.error("job %s failed: %s: %s", job_id, values["error"]["code"], values["error"]["message"])
    store.delete_prefix(checkpoint_key(job_id))  # only now: a job left to the reaper resumes from it
    log.info("job %s %s", job_id, status)
    _after_job(engine, store, settings, job_id)
    return status


def _retry_later(engine, settings: Settings, job: Job, reason: str) -> str | None:
    """Back to the queue (resuming from the checkpoint) after a backoff, or failed past max_attempts;
    if even that cannot be written, the job's heartbeat goes stale and the reaper does it."""
    delay = jobstate.retry_delay(job.attempts, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds)

    def requeue() -> str | None:
        with new_session(engine) as session:
            return jobstate.requeue_or_fail(session, job.id, job.attempts, f"the infrastructure failed ({reason})",
                                            settings.max_attempts, retry_in=delay, code="infrastructure_failed")

    try:
        outcome = retry_while_unreachable(requeue, f"requeuing job {job.id}", settings.db_retry_seconds)
    except Exception as exc:
        if not is_infrastructure(exc):
            raise
        log.error("job %s: the database stayed unreachable; the reaper will requeue the job", job.id)
        return None
    if outcome == QUEUED:
        log.warning("job %s: attempt %d of %d ended by the infrastructure (%s); it goes back to the queue in %.0f s "
                    "and resumes from its checkpoint", job.id, job.attempts, settings.max_attempts, reason, delay)
    elif outcome == FAILED:
        log.error("job %s failed: infrastructure_failed after %d attempts (%s)", job.id, job.attempts, reason)
    return outcome


def _after_job(engine, store, settings: Settings, job_id: str) -> None:
    """Release the jobs held for this one and settle its sweep, if any. Never fails the job: the
    reaper's round catches up on whatever did not happen here."""
    try:
        with new_session(engine) as session:
            sweepstate.after_job(session, store, dispatcher_for(settings), job_id)
    except Exception:
        log.exception("job %s: releasing the jobs held for it or settling its sweep failed; the reaper "
                      "will catch up", job_id)


def _device(device: str) -> str:
    """What ``device`` means on this machine, for the log."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        if index < torch.cuda.device_count():
            return f"{device} ({torch.cuda.get_device_name(index)})"
    return device


def _start_history(session: Session, job: Job, store) -> dict | None:
    """History restarts from the checkpoint this attempt resumes from (or from nothing)."""
    resume = None
    if job.checkpoint_key and store.exists(job.checkpoint_key):
        resume = load_checkpoint(store.local_path(job.checkpoint_key))
    session.execute(delete(JobHistory).where(JobHistory.job_id == job.id))
    rows = [{"job_id": job.id, "phase": r["phase"], "epoch": r["epoch"], "loss": r.get("loss"),
             "terms": {k: v for k, v in r.items() if k not in ("phase", "epoch", "loss")}}
            for r in (resume or {}).get("history", [])]
    if rows:
        session.execute(insert(JobHistory), rows)
    session.commit()
    return resume


def _log_result_health(job: Job, est: DeepClusterer) -> None:
    """Say in the job's log what the job's ``warnings`` say (the estimated K, a restored state,
    clusters that ended empty or one that holds most samples), and the result's health."""
    for warning in est.warnings_:
        log.warning("job %s: %s: %s", job.id, warning["code"], warning["message"])
    log.info("job %s: result health %s", job.id, json.dumps(est.health_, sort_keys=True))


def _estimator(job: Job, dataset: Dataset, settings: Settings) -> DeepClusterer:
    device = settings.device if job.device == "auto" else job.device
    # The canonical array is float32; 8-bit sources keep the pixel scaling they would have had.
    # (An encoder's embeddings are features: its own preprocessing scaled the pixels.)
    scaling = "divide255" if dataset.source_dtype == "uint8" and job.encoder_id is None else "auto"
    k = {"n_clusters": "auto", "k_range": tuple(job.k_range)} if job.k_range is not None else {"n_clusters": job.n_clusters}
    return DeepClusterer(job.method, random_state=job.seed, device=device, scaling=scaling,
                         guard=job.guard or "restore", **k, **job.params)


def _sweep_selection(engine, job_id: str) -> str | None:
    """The selection criterion of the sweep this job is a grid point of, if any."""
    with new_session(engine) as session:
        link = session.exec(select(SweepJob).where(SweepJob.job_id == job_id)).first()
        sweep = session.get(Sweep, link.sweep_id) if link is not None else None
        return sweep.selection if sweep is not None else None


def _pretrained(engine, job: Job) -> DeepClusterer | None:
    if job.pretrained_from is None:
        return None
    with new_session(engine) as session:
        source = session.get(Job, job.pretrained_from)
        stored = results.model_bytes(session, source.model_id) if source and source.model_id else None
    if stored is None:
        raise LookupError(f"the model of pretrained_from job {job.pretrained_from} no longer exists")
    weights, manifest = stored
    return DeepClusterer.from_bytes(weights, manifest, device="cpu")


def _store_results(engine, job: Job, reporter: JobReporter, est: DeepClusterer, X, y_true,
                   settings: Settings, encoded: Encoded | None = None) -> bool:
    """Everything a succeeded job has, in one transaction; False if the job is no longer ours. The
    transaction is retried while the database is unreachable (the heartbeat keeps the job ours)."""
    job.n_clusters = est.n_clusters_  # the estimate, when n_clusters was "auto"
    report = clustering_report(est.transform(X), est.labels_, y_true, n_clusters=job.n_clusters,
                               random_state=job.seed)
    k_selection = est.k_selection_.to_dict() if est.k_selection_ is not None else None
    if _sweep_selection(engine, job.id) == "stadion":  # its sweep chooses K by each run's Stadion score
        report["internal"]["stadion"] = stadion_of_partition(est.transform(X), est.labels_, seed=job.seed)
    weights, manifest = est.to_bytes()
    model_id = new_id("mdl")

    def commit() -> bool:
        with new_session(engine) as session:
            if not jobstate.update_owned(
                    session, job.id, job.attempts, commit=False, status=SUCCEEDED, model_id=model_id,
                    finished_at=utcnow(), heartbeat_at=None, phase="finalize", n_clusters=job.n_clusters,
                    k_selection=k_selection, warnings=est.warnings_, health=est.health_,
                    progress={**reporter.progress, "epoch": 1, "fraction": PHASE_SPANS["finalize"][1]}):
                session.rollback()
                return False
            if reporter.pending:
                session.execute(insert(JobHistory), reporter.pending)
            results.add(session, job, model_id, sample_shape=est.sample_shape_, weights=weights, manifest=manifest,
                        centers_space=est.centers_space_, centers=est.cluster_centers_, report=report,
                        labels=est.labels_, confidences=est.confidences_,
                        encoder=encoded.spec.to_dict() if encoded else None,
                        encoder_onnx=encoded.onnx if encoded else None)
            session.commit()
        return True

    if not retry_while_unreachable(commit, f"storing the results of job {job.id}", settings.db_retry_seconds):
        return False
    reporter.pending = []
    return True
