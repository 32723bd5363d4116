"""Jobs: validated creation, listing, cancel, history; the gate in front of a job's results."""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from deepclust.app.jobs import pretrain
from deepclust.app.jobs.budget import check_job_budget
from deepclust.app.core import jobstate, results
from deepclust.app.core.dispatch import BrokerUnavailable, Dispatcher, send_or_undo
from deepclust.app.core.ids import new_id
from deepclust.app.core.pagination import paginate
from deepclust.app.core.storage import ArtifactStore
from deepclust.app.core.tables import CANCELLED, SUCCEEDED, Dataset, Job, JobHistory, Metrics, SweepJob
from deepclust.app.errors import (
    BROKER_UNAVAILABLE,
    INVALID_N_CLUSTERS,
    JOB_FINISHED,
    JOB_NOT_SUCCEEDED,
    METHOD_INPUT_KIND,
    PRETRAINED_ARCHITECTURE,
    PRETRAINED_NO_AUTOENCODER,
    PRETRAINED_OTHER_DATASET,
    UNKNOWN_METHOD,
    UNSUPPORTED_INPUT_SHAPE,
)
from deepclust.app.encoders.service import encoded_view
from deepclust.app.tenancy.ownership import owned
from deepclust.app.jobs.schemas import CentroidsOut, JobCreate, JobOut, LabelItem, LabelsPage, MetricsOut
from deepclust.models import MethodInfo, get_method

# Params that fix the autoencoder's shape: a reused autoencoder must agree on them.
_ARCHITECTURE_PARAMS = ("hidden_dims", "embedding_dim")


def create_job(session: Session, dispatcher: Dispatcher, tenant: str, body: JobCreate,
               memory_budget: int | None = None) -> Job:
    dataset = owned(session, Dataset, body.dataset_id, tenant)
    if body.encoder is not None:  # the method sees the encoder's embeddings: features of width D
        dataset = encoded_view(session, tenant, dataset, body.encoder, body.method)
    method = method_for(dataset, body.method)
    n_clusters, k_range = checked_k(body, dataset, method)
    params = validated_params(method, dataset, body.params, body.pretrain)
    if memory_budget is not None:
        check_job_budget(params, dataset.n_samples, dataset.n_features, n_clusters, memory_budget)
    if body.pretrained_from is not None:
        check_pretrained_source(session, tenant, body.pretrained_from, dataset.id, params)

    job = Job(id=new_id("job"), tenant_id=tenant, dataset_id=dataset.id, name=body.name, method=method.name,
              n_clusters=n_clusters, params=params, pretrained_from=body.pretrained_from, seed=body.seed,
              device=body.device, max_runtime_s=body.max_runtime_s, encoder_id=body.encoder, guard=body.guard,
              k_range=k_range)
    session.add(job)
    session.commit()
    try:
        send_or_undo(session, [job], lambda: dispatcher.submit(job.id))
    except BrokerUnavailable as exc:
        raise BROKER_UNAVAILABLE(reason=str(exc)) from None
    return job


DEFAULT_K_RANGE = [2, 30]


def checked_k(body: JobCreate, dataset: Dataset, method: MethodInfo) -> tuple[int, list[int] | None]:
    """``(n_clusters, k_range)`` of a job: K as given (k_range None), or for "auto" the range of
    K's to estimate it from, bounded by n_samples - 1, with n_clusters its largest until chosen."""
    n = dataset.n_samples
    if body.n_clusters != "auto":
        if body.k_range is not None:
            raise INVALID_N_CLUSTERS("k_range is for n_clusters \"auto\"; with a given K leave it out.",
                                     n_clusters=body.n_clusters, k_range=body.k_range)
        if not 2 <= body.n_clusters <= n:
            raise INVALID_N_CLUSTERS(f"n_clusters must be between 2 and the number of samples "
                                     f"({n}); got {body.n_clusters}.", n_clusters=body.n_clusters, n_samples=n)
        return body.n_clusters, None
    lo, hi = body.k_range if body.k_range is not None else DEFAULT_K_RANGE
    hi = min(hi, n - 1)
    if lo < 2 or lo > hi:
        raise INVALID_N_CLUSTERS(f"k_range must be [min, max] with 2 <= min <= max, max bounded by n_samples - 1 "
                                 f"({n - 1}); got {body.k_range}.", k_range=body.k_range, n_samples=n)
    if method.name == "ae_dac":
        raise INVALID_N_CLUSTERS("n_clusters \"auto\" is not available for ae_dac: its pretrained network has one "
                                 "output per cluster, so K must be known before pretraining. Give n_clusters.",
                                 method=method.name)
    return hi, [lo, hi]


def method_for(dataset: Dataset, name: str) -> MethodInfo:
    """The named method, if it exists and trains on this dataset's kind (else 422)."""
    try:
        method = get_method(name)
    except KeyError as exc:
        raise UNKNOWN_METHOD(exc.args[0], method=name) from None
    if dataset.kind not in method.input_kinds:
        raise METHOD_INPUT_KIND(input_kind_message(method.name, method.input_kinds, dataset),
                                method=method.name, kind=dataset.kind, accepted=list(method.input_kinds))
    return method


def validated_params(method: MethodInfo, dataset: Dataset, params: dict, pretrain_block: dict | None) -> dict:
    """The full flat params of a job of ``method`` on ``dataset`` (defaults filled in), or a 422."""
    flat = pretrain.validate(method, params, pretrain_block)
    check_input = getattr(method, "check_input", None)  # e.g. the image sizes a network can take
    if check_input is not None:
        try:
            check_input(list(dataset.sample_shape), flat)
        except ValueError as exc:
            raise UNSUPPORTED_INPUT_SHAPE(f"Method {method.name!r} cannot take this dataset's samples "
                                          f"of shape {list(dataset.sample_shape)}: {exc}", method=method.name,
                                          sample_shape=list(dataset.sample_shape)) from None
    return flat


_KIND_WORDS = {"features": "feature matrices (sample_shape [D])",
               "images": "image datasets (sample_shape [C,H,W]: an image archive, or an (N,H,W) / (N,C,H,W) array)"}


def input_kind_message(method: str, accepted: tuple[str, ...], dataset: Dataset) -> str:
    takes = " and ".join(_KIND_WORDS.get(k, k) for k in accepted)
    other = "GET /v1/methods lists what each method takes"
    return (f"Method {method!r} takes only {takes}; dataset {dataset.id} holds {dataset.kind} (sample_shape "
            f"{list(dataset.sample_shape)}). Upload {'images' if 'images' in accepted else 'features'} for it, "
            f"or choose another method ({other}).")


def check_pretrained_source(session: Session, tenant: str, source_id: str, dataset_id: str, params: dict) -> None:
    source = owned(session, Job, source_id, tenant)
    if source.status != SUCCEEDED:
        raise JOB_NOT_SUCCEEDED(f"pretrained_from job {source_id} is {source.status}; only a "
                                "succeeded job's autoencoder can be reused.", {"id": source_id, "status": source.status})
    if source.dataset_id != dataset_id:
        raise PRETRAINED_OTHER_DATASET(f"pretrained_from job {source_id} was trained on dataset "
                                       f"{source.dataset_id}, not {dataset_id}.", pretrained_from=source_id)
    shared = [p for p in _ARCHITECTURE_PARAMS if p in source.params]
    if not shared or not all(p in params for p in shared):
        raise PRETRAINED_NO_AUTOENCODER(f"Job {source_id} ({source.method}) and this job do not both "
                                        "train an autoencoder.", pretrained_from=source_id)
    for p in shared:
        if params[p] is not None and source.params[p] is not None and params[p] != source.params[p]:
            raise PRETRAINED_ARCHITECTURE(f"{p} is {params[p]!r} here but {source.params[p]!r} in job "
                                          f"{source_id}; the reused autoencoder needs the same architecture.", param=p)


def resource(session: Session, job: Job, metrics: dict | None = None) -> JobOut:
    """The job as the API shows it, with the sweep it belongs to (if any)."""
    return JobOut.of(job, metrics, sweeps_of(session, [job.id]).get(job.id))


def sweeps_of(session: Session, job_ids: list[str]) -> dict[str, str]:
    """``{job_id: sweep_id}`` for those of ``job_ids`` that a sweep made (one query)."""
    if not job_ids:
        return {}
    return dict(session.exec(select(SweepJob.job_id, SweepJob.sweep_id).where(SweepJob.job_id.in_(job_ids))).all())


def get_resource(session: Session, tenant: str, job_id: str) -> JobOut:
    return resource(session, owned(session, Job, job_id, tenant))


def cancel_resource(session: Session, store: ArtifactStore, tenant: str, job_id: str) -> JobOut:
    return resource(session, cancel_job(session, store, tenant, job_id))


def list_jobs(session: Session, tenant: str, status: str | None, dataset_id: str | None,
              limit: int, offset: int, *, method: str | None = None, sweep_id: str | None = None,
              standalone: bool | None = None) -> tuple[list[JobOut], int]:
    """A page of the tenant's jobs as the API shows them (each succeeded one with its metrics
    summary, each sweep's child with its sweep) and their total; ``sweep_id``: that sweep's
    children; ``standalone``: True for the jobs of no sweep, False for sweeps' children only."""
    where = [Job.tenant_id == tenant]
    if status is not None:
        where.append(Job.status == status)
    if dataset_id is not None:
        where.append(Job.dataset_id == dataset_id)
    if method is not None:
        where.append(Job.method == method)
    if sweep_id is not None:
        where.append(Job.id.in_(select(SweepJob.job_id).where(SweepJob.sweep_id == sweep_id)))
    if standalone is not None:
        children = Job.id.in_(select(SweepJob.job_id))
        where.append(~children if standalone else children)
    rows, total = paginate(session, Job, *where, limit=limit, offset=offset)
    summaries, sweeps = metrics_summaries(session, rows), sweeps_of(session, [r.id for r in rows])
    return [JobOut.of(r, summaries.get(r.id), sweeps.get(r.id)) for r in rows], total


def metrics_summaries(session: Session, jobs: list[Job]) -> dict[str, dict]:
    """The stored metrics of the succeeded ``jobs``, summed up for comparing runs (one query, no
    recomputation): acc/nmi when the dataset is labelled, silhouette, nonempty_clusters."""
    ids = [j.id for j in jobs if j.status == SUCCEEDED]
    if not ids:
        return {}
    return {job_id: summary(row) for job_id, row in results.metrics_of(session, ids).items()}


def summary(row: Metrics) -> dict:
    external = row.external or {}
    out = {k: external[k] for k in ("acc", "nmi") if external.get(k) is not None}
    out["silhouette"] = (row.internal or {}).get("silhouette")
    out["nonempty_clusters"] = sum(1 for size in row.cluster_sizes or [] if size > 0)
    return out


def cancel_job(session: Session, store: ArtifactStore, tenant: str, job_id: str) -> Job:
    job = owned(session, Job, job_id, tenant)
    outcome = jobstate.request_cancel(session, job_id)
    session.refresh(job)
    if outcome is None:
        raise JOB_FINISHED(f"Job {job_id} has already {job.status}; there is nothing to cancel.",
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
        raise JOB_NOT_SUCCEEDED(f"Job {job_id} is {job.status}; results exist once it has "
                                "succeeded.", {"status": job.status})
    return job


@dataclass(frozen=True)
class LabelsFile:
    """All of a job's labels as one file (csv or npy), for a download."""
    content: bytes
    media_type: str
    filename: str


def labels(session: Session, tenant: str, job_id: str, format: str, offset: int,
           limit: int) -> LabelsPage | LabelsFile:
    """A page of labels (json), or all of them as a file (csv, npy)."""
    job = succeeded_job(session, tenant, job_id)
    if format == "csv":
        return LabelsFile(results.labels_csv(session, job.id), "text/csv", f"{job.id}-labels.csv")
    if format == "npy":
        return LabelsFile(results.labels_npy(session, job.id), "application/octet-stream", f"{job.id}-labels.npy")
    rows, total = results.labels_page(session, job.id, offset, limit)
    return LabelsPage(total=total, offset=offset,
                      items=[LabelItem(index=r.index, label=r.label, confidence=r.confidence) for r in rows])


def centroids(session: Session, tenant: str, job_id: str) -> CentroidsOut:
    row = results.centroids(session, succeeded_job(session, tenant, job_id).id)
    return CentroidsOut(space=row.space, dim=row.dim, centroids=row.values)


def metrics(session: Session, tenant: str, job_id: str) -> MetricsOut:
    return MetricsOut.of(results.metrics(session, succeeded_job(session, tenant, job_id).id))
