"""Jobs: validated creation, cancel, reads of a job's history and results."""
from __future__ import annotations

import io
import numpy as np
from sqlmodel import Session, func, select

from app import jobstate
from app.dispatch import BrokerUnavailable, Dispatcher
from app.errors import ApiError, invalid
from app.ids import new_id
from app.ownership import owned
from app.schemas import JobCreate
from app.storage import ArtifactStore
from app.tables import CANCELLED, SUCCEEDED, Assignment, Centroids, Dataset, Job, JobHistory, Metrics
from models import InvalidParams, get_method

# Params that fix the autoencoder's shape: a reused autoencoder must agree on them.
_ARCHITECTURE_PARAMS = ("hidden_dims", "embedding_dim")


def method_params(body: JobCreate) -> dict:
    """The flat params the library takes: `pretrain: {epochs: 3}` is `pretrain_epochs=3`."""
    params = dict(body.params)
    for key, value in (body.pretrain or {}).items():
        name = f"pretrain_{key}"
        if name in params:
            message = f"given twice (in params and as pretrain.{key})"
            raise invalid("invalid_params", f"{name}: {message}.", errors=[{"param": name, "message": message}])
        params[name] = value
    return params


def create_job(session: Session, dispatcher: Dispatcher, tenant: str, body: JobCreate) -> Job:
    dataset = owned(session, Dataset, body.dataset_id, tenant)
    try:
        method = get_method(body.method)
    except KeyError as exc:
        raise invalid("unknown_method", exc.args[0], method=body.method) from None
    if dataset.kind not in method.input_kinds:
        raise invalid("method_input_kind", f"Method {method.name!r} takes {', '.join(method.input_kinds)}; "
                      f"this dataset is {dataset.kind}.", method=method.name, kind=dataset.kind)
    if not 2 <= body.n_clusters <= dataset.n_samples:
        raise invalid("invalid_n_clusters", f"n_clusters must be between 2 and the number of samples "
                      f"({dataset.n_samples}); got {body.n_clusters}.", n_clusters=body.n_clusters,
                      n_samples=dataset.n_samples)
    try:
        params = method.validate(method_params(body))
    except InvalidParams as exc:
        raise invalid("invalid_params", str(exc), errors=exc.errors) from None
    if body.pretrained_from is not None:
        check_pretrained_source(session, tenant, body.pretrained_from, dataset.id, params)

    job = Job(id=new_id("job"), tenant_id=tenant, dataset_id=dataset.id, name=body.name, method=method.name,
              n_clusters=body.n_clusters, params=params, pretrained_from=body.pretrained_from, seed=body.seed,
              device=body.device)
    session.add(job)
    session.commit()
    try:
        dispatcher.submit(job.id)  # only after the commit: a worker must find the row
    except BrokerUnavailable as exc:
        session.delete(job)
        session.commit()
        raise ApiError(503, "broker_unavailable", "The job queue (broker) is not answering; nothing was "
                       "created, try again shortly.", {"reason": str(exc)}) from None
    return job


def check_pretrained_source(session: Session, tenant: str, source_id: str, dataset_id: str, params: dict) -> None:
    source = owned(session, Job, source_id, tenant)
    if source.status != SUCCEEDED:
        raise ApiError(409, "job_not_succeeded", f"pretrained_from job {source_id} is {source.status}; only a "
                       "succeeded job's autoencoder can be reused.", {"id": source_id, "status": source.status})
    if source.dataset_id != dataset_id:
        raise invalid("pretrained_other_dataset", f"pretrained_from job {source_id} was trained on dataset "
                      f"{source.dataset_id}, not {dataset_id}.", pretrained_from=source_id)
    shared = [p for p in _ARCHITECTURE_PARAMS if p in source.params]
    if not shared or not all(p in params for p in shared):
        raise invalid("pretrained_no_autoencoder", f"Job {source_id} ({source.method}) and this job do not both "
                      "train an autoencoder.", pretrained_from=source_id)
    for p in shared:
        if params[p] is not None and source.params[p] is not None and params[p] != source.params[p]:
            raise invalid("pretrained_architecture", f"{p} is {params[p]!r} here but {source.params[p]!r} in job "
                          f"{source_id}; the reused autoencoder needs the same architecture.", param=p)


def list_jobs(session: Session, tenant: str, status: str | None, dataset_id: str | None,
              limit: int, offset: int) -> tuple[list[Job], int]:
    where = [Job.tenant_id == tenant]
    if status is not None:
        where.append(Job.status == status)
    if dataset_id is not None:
        where.append(Job.dataset_id == dataset_id)
    rows = session.exec(select(Job).where(*where).order_by(Job.created_at.desc(), Job.id)
                        .offset(offset).limit(limit)).all()
    return list(rows), session.exec(select(func.count()).select_from(Job).where(*where)).one()


def cancel_job(session: Session, store: ArtifactStore, tenant: str, job_id: str) -> Job:
    job = owned(session, Job, job_id, tenant)
    outcome = jobstate.request_cancel(session, job_id)
    session.refresh(job)
    if outcome is None:
        raise ApiError(409, "job_finished", f"Job {job_id} has already {job.status}; there is nothing to cancel.",
                       {"status": job.status})
    if outcome == CANCELLED and job.checkpoint_key:  # a requeued job may have left one
        store.delete_prefix(job.checkpoint_key)
    return job


def history(session: Session, tenant: str, job_id: str) -> list[dict]:
    owned(session, Job, job_id, tenant)
    rows = session.exec(select(JobHistory).where(JobHistory.job_id == job_id).order_by(JobHistory.id)).all()
    return [{"phase": r.phase, "epoch": r.epoch, "loss": r.loss, **r.terms} for r in rows]


# -- results of a succeeded job ---------------------------------------------------------------

def succeeded_job(session: Session, tenant: str, job_id: str) -> Job:
    job = owned(session, Job, job_id, tenant)
    if job.status != SUCCEEDED:
        raise ApiError(409, "job_not_succeeded", f"Job {job_id} is {job.status}; results exist once it has "
                       "succeeded.", {"status": job.status})
    return job


def labels_page(session: Session, job: Job, offset: int, limit: int) -> tuple[list[Assignment], int]:
    rows = session.exec(select(Assignment).where(Assignment.job_id == job.id, Assignment.index >= offset)
                        .order_by(Assignment.index).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(Assignment).where(Assignment.job_id == job.id)).one()
    return list(rows), total


def labels_csv(session: Session, job: Job) -> str:
    rows = session.exec(select(Assignment).where(Assignment.job_id == job.id).order_by(Assignment.index)).all()
    return "index,label,confidence\n" + "".join(f"{r.index},{r.label},{r.confidence:.6g}\n" for r in rows)


def labels_npy(session: Session, job: Job) -> bytes:
    labels = session.exec(select(Assignment.label).where(Assignment.job_id == job.id)
                          .order_by(Assignment.index)).all()
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(labels, dtype=np.int64))
    return buffer.getvalue()


def centroids(session: Session, job: Job) -> Centroids:
    return session.get(Centroids, job.id)


def metrics(session: Session, job: Job) -> Metrics:
    return session.get(Metrics, job.id)

