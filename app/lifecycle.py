"""Deleting jobs, models and datasets, and the retention of old finished jobs. A dataset takes its
finished batch predictions with it; a dataset or model waits (409) for those queued or running.

A job goes with everything it made: its model, history, labels, centroids and metrics (rows that
reference it by foreign key, ON DELETE CASCADE) and its files (checkpoint, log, plots). Only a finished
job can go: one that is queued or running is a 409 until it is cancelled or done. The row is
deleted by a guarded statement, so a job that a worker claims at the same moment stays.
"""
from __future__ import annotations

from sqlalchemy import delete, update
from sqlmodel import Session, select

from deepclust.app.core import storage
from deepclust.app.core.storage import ArtifactStore, log_key, plots_prefix
from deepclust.app.core.tables import ACTIVE_STATES, Dataset, Job, TrainedModel
from deepclust.app.errors import DATASET_IN_USE, JOB_ACTIVE, MODEL_IN_USE, ApiError
from deepclust.app.predictions import service as predictions
from deepclust.app.tenancy.ownership import owned


def job_active(job: Job) -> ApiError:
    return JOB_ACTIVE(f"Job {job.id} is {job.status}; cancel it first (POST /v1/jobs/{job.id}/cancel) "
                      "and delete it once it has stopped.", {"id": job.id, "status": job.status})


def remove_job(session: Session, job: Job) -> bool:
    """Delete a finished job's rows (in the caller's transaction) and, once committed, its files."""
    gone = session.execute(delete(Job).where(Job.id == job.id, Job.status.not_in(ACTIVE_STATES))).rowcount == 1
    if gone:
        session.execute(delete(TrainedModel).where(TrainedModel.job_id == job.id))
    return gone


def remove_files(store: ArtifactStore, job: Job) -> None:
    for key in (job.checkpoint_key, log_key(job.id), plots_prefix(job.id)):
        if key:
            store.delete_prefix(key)


def delete_job(session: Session, store: ArtifactStore, tenant: str, job_id: str) -> list[str]:
    """Delete a finished job with its model, results and files; returns the ids of models removed."""
    job = owned(session, Job, job_id, tenant)
    models = list(session.exec(select(TrainedModel.id).where(TrainedModel.job_id == job_id)).all())
    if not remove_job(session, job):
        session.rollback()
        session.refresh(job)
        raise job_active(job)
    session.commit()
    remove_files(store, job)
    return models


def delete_model(session: Session, tenant: str, model_id: str) -> None:
    """Delete a model; its job (if any) keeps its results and no longer names a model, its finished
    batch predictions their labels. 409 while a batch prediction by it is queued or running."""
    model = owned(session, TrainedModel, model_id, tenant)
    busy = predictions.active_of(session, model_id=model_id)
    if busy:
        raise MODEL_IN_USE(f"Prediction{'s' if len(busy) > 1 else ''} {', '.join(busy)} of this model "
                           f"{'are' if len(busy) > 1 else 'is'} queued or running; cancel or wait for "
                           f"{'them' if len(busy) > 1 else 'it'}, then delete the model.", {"prediction_ids": busy})
    if model.job_id is not None:
        session.execute(update(Job).where(Job.id == model.job_id).values(model_id=None))
    session.delete(model)
    session.commit()


def delete_dataset(session: Session, store: ArtifactStore, tenant: str, dataset_id: str) -> list[str]:
    """Delete a dataset with its finished jobs and their models (409 while one of its jobs is
    queued or running); returns the ids of models removed."""
    dataset = owned(session, Dataset, dataset_id, tenant)
    jobs = list(session.exec(select(Job).where(Job.dataset_id == dataset_id)).all())
    busy = [job.id for job in jobs if job.status in ACTIVE_STATES]
    busy_predictions = predictions.active_of(session, dataset_id=dataset_id)
    if busy_predictions:  # a batch prediction of it is guarded the same way
        raise DATASET_IN_USE(f"Batch prediction{'s' if len(busy_predictions) > 1 else ''} "
                             f"{', '.join(busy_predictions)} of this dataset {'are' if len(busy_predictions) > 1 else 'is'} "
                             "queued or running; cancel or wait for the end, then delete the dataset.",
                             {"job_ids": busy, "prediction_ids": busy_predictions})
    if busy:
        raise DATASET_IN_USE(f"Job{'s' if len(busy) > 1 else ''} {', '.join(busy)} of this dataset "
                             f"{'are' if len(busy) > 1 else 'is'} queued or running; cancel {'them' if len(busy) > 1 else 'it'} "
                             "or wait for the end, then delete the dataset.", {"job_ids": busy})
    models = list(session.exec(select(TrainedModel.id).where(TrainedModel.job_id.in_([j.id for j in jobs]))).all())
    for job in jobs:
        if not remove_job(session, job):  # a job started meanwhile: delete nothing
            session.rollback()
            raise DATASET_IN_USE(f"Job {job.id} of this dataset has just started; cancel it or "
                                 "wait for the end, then delete the dataset.", {"job_ids": [job.id]})
    finished_predictions = predictions.remove_finished_of_dataset(session, dataset_id)
    session.delete(dataset)
    session.commit()
    for job in jobs:
        remove_files(store, job)
    for prediction_id in finished_predictions:
        predictions.remove_files(store, prediction_id)
    store.delete_prefix(storage.dataset_prefix(dataset_id))
    return models
