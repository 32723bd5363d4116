"""`run_job(job_id)`: the one entry point for executing a job, whoever dispatched it.

Claim (guarded: a second delivery is a no-op), memory-map the dataset, train through the library
with the reporting callback, then store model, centroids, assignments, metrics and the final
history in one transaction. Idempotent: a finished or running job is left alone.
"""
from __future__ import annotations

import json
import logging

import numpy as np
from sqlalchemy import delete, insert
from sqlmodel import Session

from app.core import joblog, jobstate, results, sweepstate
from app.core.db import engine_for, new_session, utcnow
from app.core.dispatch import make_dispatcher
from app.core.ids import new_id
from app.core.npyfile import open_array
from app.core.settings import Settings, get_settings
from app.core.storage import store_for
from app.core.tables import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    Dataset,
    Job,
    JobHistory,
)
from models import DeepClusterer, TrainingCancelled, load_checkpoint
from models.metrics import clustering_report
from worker.reporting import PHASE_SPANS, JobReporter, checkpoint_key

log = logging.getLogger(__name__)


def run_job(job_id: str, settings: Settings | None = None, attempt: int | None = None) -> str | None:
    """Run the job if it can be claimed; returns its final status, or None if it was not ours.

    ``attempt``: the job was claimed for us already (by the local runner) as this attempt.
    """
    settings = settings or get_settings()
    engine = engine_for(settings.database_url)
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
    job_id = job.id
    device = settings.device if job.device == "auto" else job.device
    log.info("job %s: attempt %d: %s with K=%d on dataset %s (%s), device %s, seed %d", job_id, job.attempts,
             job.method, job.n_clusters, job.dataset_id,
             f"{dataset.n_samples} samples of shape {dataset.sample_shape}" if dataset else "gone", _device(device),
             job.seed)
    log.info("job %s: params %s", job_id, json.dumps(job.params, sort_keys=True))
    if resume is not None:
        log.info("job %s: resuming from its checkpoint (%s, after %d epochs)", job_id, resume.get("phase"),
                 len(resume.get("history", [])))

    y_true = np.load(store.local_path(dataset.labels_key)) if dataset and dataset.labels_key else None
    reporter = JobReporter(engine, job, settings, store, y_true)
    status, values = FAILED, {}
    try:
        with reporter.heartbeat():
            if dataset is None:
                raise LookupError(f"dataset {job.dataset_id} no longer exists")
            X = open_array(store.local_path(dataset.data_key))
            estimator = _estimator(job, dataset, settings)
            estimator.fit(X, callbacks=[reporter], pretrained=_pretrained(engine, job), resume_from=resume)
            reporter.enter_phase("finalize")
            if _store_results(engine, job, reporter, estimator, X, y_true):
                status = SUCCEEDED
            else:
                reporter.lost.set()
    except TrainingCancelled:
        status = CANCELLED
    except Exception as exc:
        log.exception("job %s failed", job_id)
        code = "invalid_input" if isinstance(exc, (ValueError, LookupError)) else "training_failed"
        values = {"error": {"code": code, "message": f"{type(exc).__name__}: {exc}"}}

    # Once the results are committed the job is ours for good (a heartbeat racing the commit
    # may still have seen it finished and raised the flag).
    if status != SUCCEEDED and reporter.lost.is_set():
        log.warning("job %s attempt %d lost its claim; leaving the job to its new owner", job_id, job.attempts)
        return None
    store.delete_prefix(checkpoint_key(job_id))
    if status != SUCCEEDED:
        with new_session(engine) as session:
            if reporter.pending:
                session.execute(insert(JobHistory), reporter.pending)
            jobstate.finish(session, job_id, job.attempts, status, **values)
    log.info("job %s %s", job_id, status)
    _after_job(engine, store, settings, job_id)
    return status


def _after_job(engine, store, settings: Settings, job_id: str) -> None:
    """Release the jobs held for this one and settle its sweep, if any. Never fails the job: the
    reaper's round catches up on whatever did not happen here."""
    try:
        with new_session(engine) as session:
            sweepstate.after_job(session, store, make_dispatcher(settings), job_id)
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


def _estimator(job: Job, dataset: Dataset, settings: Settings) -> DeepClusterer:
    device = settings.device if job.device == "auto" else job.device
    # The canonical array is float32; 8-bit sources keep the pixel scaling they would have had.
    scaling = "divide255" if dataset.source_dtype == "uint8" else "auto"
    return DeepClusterer(job.method, job.n_clusters, random_state=job.seed, device=device, scaling=scaling,
                         **job.params)


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


def _store_results(engine, job: Job, reporter: JobReporter, est: DeepClusterer, X, y_true) -> bool:
    """Everything a succeeded job has, in one transaction; False if the job is no longer ours."""
    report = clustering_report(est.transform(X), est.labels_, y_true, n_clusters=job.n_clusters,
                               random_state=job.seed)
    weights, manifest = est.to_bytes()
    model_id = new_id("mdl")
    with new_session(engine) as session:
        if not jobstate.update_owned(
                session, job.id, job.attempts, commit=False, status=SUCCEEDED, model_id=model_id, finished_at=utcnow(),
                heartbeat_at=None, phase="finalize",
                progress={**reporter.progress, "epoch": 1, "fraction": PHASE_SPANS["finalize"][1]}):
            session.rollback()
            return False
        if reporter.pending:
            session.execute(insert(JobHistory), reporter.pending)
        results.add(session, job, model_id, sample_shape=est.sample_shape_, weights=weights, manifest=manifest,
                    centers_space=est.centers_space_, centers=est.cluster_centers_, report=report,
                    labels=est.labels_, confidences=est.confidences_)
        session.commit()
    reporter.pending = []
    return True
