"""`run_job(job_id)`: the one entry point for executing a job, whoever dispatched it.

Claim (guarded: a second delivery is a no-op), memory-map the dataset, train through the library
with the reporting callback, then store model, centroids, assignments, metrics and the final
history in one transaction. Idempotent: a finished or running job is left alone.
"""
from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import delete, insert
from sqlmodel import Session

from app import jobstate
from app.db import engine_for, new_session, utcnow
from app.ids import new_id
from app.npyfile import open_array
from app.settings import Settings, get_settings
from app.storage import store_for
from app.tables import (CANCELLED, FAILED, SUCCEEDED, Assignment, Centroids, Dataset, Job, JobHistory, Metrics,
                        TrainedModel)
from models import DeepClusterer, TrainingCancelled, load_checkpoint
from models.metrics import clustering_report
from worker.reporting import PHASE_SPANS, JobReporter, checkpoint_key

log = logging.getLogger(__name__)


def run_job(job_id: str, settings: Settings | None = None) -> str | None:
    """Run the job if it can be claimed; returns its final status, or None if it was not ours."""
    settings = settings or get_settings()
    engine = engine_for(settings.database_url)
    store = store_for(settings.data_dir)
    with new_session(engine) as session:
        job = jobstate.claim(session, job_id, jobstate.worker_name())
        if job is None:
            log.info("job %s is not queued (already taken, finished or cancelled); nothing to do", job_id)
            return None
        dataset = session.get(Dataset, job.dataset_id)
        resume = _start_history(session, job, store)
    log.info("job %s: attempt %d of %s on %s", job_id, job.attempts, job.method, job.dataset_id)
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
    return status


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
        model = session.get(TrainedModel, source.model_id) if source and source.model_id else None
    if model is None:
        raise LookupError(f"the model of pretrained_from job {job.pretrained_from} no longer exists")
    return DeepClusterer.from_bytes(model.weights, model.manifest, device="cpu")


def _store_results(engine, job: Job, reporter: JobReporter, est: DeepClusterer, X, y_true) -> bool:
    """Everything a succeeded job has, in one transaction; False if the job is no longer ours."""
    report = clustering_report(est.transform(X), est.labels_, y_true, n_clusters=job.n_clusters,
                               random_state=job.seed)
    weights, manifest = est.to_bytes()
    model_id = new_id("mdl")
    centers = est.cluster_centers_
    with new_session(engine) as session:
        if not jobstate.update_owned(
                session, job.id, job.attempts, commit=False, status=SUCCEEDED, model_id=model_id, finished_at=utcnow(),
                heartbeat_at=None, phase="finalize",
                progress={**reporter.progress, "epoch": 1, "fraction": PHASE_SPANS["finalize"][1]}):
            session.rollback()
            return False
        if reporter.pending:
            session.execute(insert(JobHistory), reporter.pending)
        session.add(TrainedModel(id=model_id, tenant_id=job.tenant_id, job_id=job.id, dataset_id=job.dataset_id,
                                 method=job.method, params=job.params, n_clusters=job.n_clusters,
                                 sample_shape=list(est.sample_shape_), weights=weights, manifest=manifest))
        session.add(Centroids(job_id=job.id, space=est.centers_space_, dim=int(centers.shape[1]),
                              values=centers.tolist()))
        session.add(Metrics(job_id=job.id, **report))
        session.execute(insert(Assignment), [
            {"job_id": job.id, "index": i, "label": int(label), "confidence": float(conf)}
            for i, (label, conf) in enumerate(zip(est.labels_, est.confidences_))])
        session.commit()
    reporter.pending = []
    return True
