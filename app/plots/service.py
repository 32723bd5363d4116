"""Plots of a job: the numbers behind each picture and the PNG, cached in the artifact store.

A finished job's plots never change, so each is computed once (numbers and picture together) and
kept under ``plots/{job_id}/``; the training curves of a running job are drawn afresh each time.
The pictures themselves come from ``models.plotting`` (the optional ``plot`` extra).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np
from sqlmodel import Session, select

from deepclust.app.core import results, storage
from deepclust.app.core.npyfile import open_array
from deepclust.app.core.storage import ArtifactStore, embeddings_key
from deepclust.app.core.tables import ACTIVE_STATES, SUCCEEDED, Assignment, Dataset, Job, JobHistory, TrainedModel
from deepclust.app.errors import (
    DATASET_DELETED,
    JOB_NOT_SUCCEEDED,
    MODEL_DELETED,
    NOT_IMAGES,
    NO_K_SELECTION,
    NO_LABELS,
    PLOTTING_UNAVAILABLE,
    PLOT_NOT_FOUND,
    ApiError,
)
from deepclust.app.tenancy.ownership import owned
from deepclust.app.trained_models.predict import ModelCache
from deepclust.models import DeepClusterer, plotting

PLOTS = ("history", "embedding", "sizes", "examples", "confusion", "k_selection")
PROJECTIONS = ("pca", "tsne")
MAP_MAX_POINTS = 10_000     # rows of the dataset drawn (and embedded) for the embedding map
EXAMPLES_PER_CLUSTER = 8
# Drawing a map or a grid is CPU work in the web process: a few at a time, the rest wait their turn.
_drawing = threading.BoundedSemaphore(2)


class _SingleFlight:
    """One lock per plot key, alive while a request holds or waits for it.

    36 simultaneous requests for the same uncached t-SNE map used to compute it 36 times (16.7x
    the time of one). Now the first computes and caches it; the others wait on its key and then
    read the cache. Per process: a server with several processes computes a plot at most once in
    each, and the cache's atomic publish makes the copies harmless.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[key]


_flights = _SingleFlight()


def plot_key(job_id: str, name: str, projection: str = "pca") -> str:
    return storage.plot_key(job_id, f"{name}-{projection}" if name == "embedding" else name)


def cache_prefix(job_id: str) -> str:
    """Everything drawn for a job: deleting the job removes it."""
    return storage.plots_prefix(job_id)


def plot_job(session: Session, tenant: str, job_id: str, name: str) -> Job:
    """The tenant's job, once ``name`` is known to be a plot (404 for either)."""
    job = owned(session, Job, job_id, tenant)
    if name not in PLOTS:
        raise PLOT_NOT_FOUND(f"There is no plot {name!r}; the plots are {', '.join(PLOTS)}.",
                             {"plot": name, "plots": list(PLOTS)})
    return job


def job_plot_png(session: Session, store: ArtifactStore, models: ModelCache, tenant: str, job_id: str, name: str,
                 projection: str = "pca") -> tuple[bytes, bool]:
    """The picture, and whether the job has ended (then the picture never changes)."""
    job = plot_job(session, tenant, job_id, name)
    finished = job.status not in ACTIVE_STATES
    return plot_png(session, store, models, job, name, projection), finished


def job_plot_numbers(session: Session, store: ArtifactStore, models: ModelCache, tenant: str, job_id: str,
                     name: str, projection: str = "pca") -> dict:
    return plot_numbers(session, store, models, plot_job(session, tenant, job_id, name), name, projection)


def plot_png(session: Session, store: ArtifactStore, models: ModelCache, job: Job, name: str,
             projection: str = "pca") -> bytes:
    """The picture ``name`` of ``job``: cached, or drawn (and cached, with its numbers, once the job is over)."""
    key, finished = plot_key(job.id, name, projection), job.status not in ACTIVE_STATES
    if not finished:
        return _draw(session, store, models, job, name, projection)
    if store.exists(f"{key}.png"):
        return store.local_path(f"{key}.png").read_bytes()
    job_id, tenant = job.id, job.tenant_id
    session.rollback()  # waiting for another request's drawing holds no database connection
    with _flights.hold(key):
        if store.exists(f"{key}.png"):  # drawn by the request this one waited for
            return store.local_path(f"{key}.png").read_bytes()
        job = owned(session, Job, job_id, tenant)  # read again: it may have gone while this one waited
        png, numbers = _draw(session, store, models, job, name, projection, keep_numbers=True)
        _cache(store, key, numbers, png)
        return png


def _draw(session: Session, store: ArtifactStore, models: ModelCache, job: Job, name: str, projection: str,
          keep_numbers: bool = False):
    """Compute and draw the picture (and its numbers, with ``keep_numbers``), without caching."""
    check_available(session, job, name)
    if not plotting.available():
        raise PLOTTING_UNAVAILABLE("This server cannot draw plots: matplotlib is not installed "
                                   "(pip install 'deepclust[plot]'). The numbers of each plot are at "
                                   f"/v1/jobs/{job.id}/plots/{name}.json.", {"plot": name})
    compute = _prepare(session, store, models, job, name, projection)
    session.rollback()  # the connection goes back to the pool: what follows is slow and reads no database
    with _drawing:
        numbers, draw = compute()
        png = plotting.to_png(draw())
    return (png, numbers) if keep_numbers else png


def plot_numbers(session: Session, store: ArtifactStore, models: ModelCache, job: Job, name: str,
                 projection: str = "pca") -> dict:
    """The numbers behind the picture ``name``, for drawing one's own."""
    key, finished = plot_key(job.id, name, projection), job.status not in ACTIVE_STATES
    if not finished:
        return _compute_numbers(session, store, models, job, name, projection)
    if store.exists(f"{key}.json"):
        return json.loads(store.local_path(f"{key}.json").read_text())
    job_id, tenant = job.id, job.tenant_id
    session.rollback()
    with _flights.hold(key):
        if store.exists(f"{key}.json"):
            return json.loads(store.local_path(f"{key}.json").read_text())
        job = owned(session, Job, job_id, tenant)
        numbers = _compute_numbers(session, store, models, job, name, projection)
        _cache(store, key, numbers)
        return numbers


def _compute_numbers(session: Session, store: ArtifactStore, models: ModelCache, job: Job, name: str,
                     projection: str) -> dict:
    check_available(session, job, name)
    compute = _prepare(session, store, models, job, name, projection)
    session.rollback()
    with _drawing:
        numbers, _ = compute()
    return numbers


def check_available(session: Session, job: Job, name: str) -> None:
    """409 where API.md says so: history any time, the rest once succeeded and where they apply."""
    if name == "history":
        return
    if name == "k_selection":
        if job.k_selection is None:
            raise NO_K_SELECTION(f"Job {job.id} " + ("was given its K, so there is no estimate to draw."
                                                     if job.k_range is None else "has not estimated its K yet."),
                                 {"plot": name})
        return
    if job.status != SUCCEEDED:
        raise JOB_NOT_SUCCEEDED(f"Job {job.id} is {job.status}; the {name} plot exists once it has "
                                "succeeded (the history plot is there while it runs).", {"status": job.status})
    if name == "confusion" and results.metrics(session, job.id).external is None:
        raise NO_LABELS(f"The dataset of job {job.id} has no labels, so there is nothing to compare "
                        "the clusters with. Upload it with labels to get a confusion matrix.", {"plot": name})
    if name == "examples" and len(_sample_shape(session, job)) != 3:
        raise NOT_IMAGES(f"Job {job.id} was trained on feature vectors, not images; example grids "
                         "exist for image datasets.", {"plot": name})


def _cache(store: ArtifactStore, key: str, numbers: dict, png: bytes | None = None) -> None:
    # The numbers first: whoever finds the picture finds its numbers too.
    files = [(".json", json.dumps(numbers).encode())] + ([(".png", png)] if png is not None else [])
    for suffix, data in files:
        with store.staging_file(suffix) as tmp:
            tmp.write_bytes(data)
            store.publish(tmp, key + suffix)


Computation = Callable[[], tuple[dict, Callable[[], object]]]


def _prepare(session: Session, store: ArtifactStore, models: ModelCache, job: Job, name: str,
             projection: str) -> Computation:
    """Read what the plot needs (rows, files, the model), and return its computation, which gives
    the numbers and how to draw them and touches no database."""
    if name == "history":
        return partial(_history, history_rows(session, job.id))
    if name == "k_selection":
        return partial(_k_selection, dict(job.k_selection))
    if name == "sizes":
        return partial(_sizes, results.metrics(session, job.id).cluster_sizes)
    labels, confidence = _assignments(session, job.id)
    if name == "confusion":
        return partial(_confusion, _dataset_labels(session, store, job), labels, job.n_clusters)
    X = _dataset_array(session, store, job)
    if name == "examples":
        return partial(_examples, X, labels, confidence, job.n_clusters)
    if job.encoder_id is not None:  # the model clusters the encoder's embeddings, kept by the worker
        X = _encoded_array(store, job)
    return partial(_embedding, X, labels, results.centroids(session, job.id).values, _model(session, models, job),
                   job.n_clusters, job.seed, projection)


def _k_selection(selection: dict):
    return selection, partial(plotting.k_selection_figure, selection)


def _history(rows: list[dict]):
    return {"rows": rows}, partial(plotting.history_figure, rows)


def _sizes(sizes: list[int]):
    return {"cluster_sizes": sizes}, partial(plotting.sizes_figure, sizes)


def _confusion(y_true: np.ndarray, labels: np.ndarray, n_clusters: int):
    confusion = plotting.confusion_counts(y_true, labels, n_clusters=n_clusters)
    return confusion.to_dict(), partial(plotting.confusion_figure, confusion)


def _examples(X: np.ndarray, labels: np.ndarray, confidence: np.ndarray, n_clusters: int):
    chosen = plotting.select_examples(labels, confidence, EXAMPLES_PER_CLUSTER, n_clusters)
    numbers = {"n_per_cluster": EXAMPLES_PER_CLUSTER, "clusters": [
        {"cluster": c.cluster, "size": c.size,
         "most_confident": [{"index": i, "confidence": float(confidence[i])} for i in c.most_confident],
         "least_confident": [{"index": i, "confidence": float(confidence[i])} for i in c.least_confident]}
        for c in chosen]}
    return numbers, partial(plotting.examples_figure, X, labels, confidence, n_per_cluster=EXAMPLES_PER_CLUSTER,
                            n_clusters=n_clusters)


def _embedding(X: np.ndarray, labels: np.ndarray, centroids: list, model: DeepClusterer, n_clusters: int,
               seed: int, projection: str):
    # Only the sampled rows are embedded (the model runs in this process, as for predict).
    rows = plotting.sample_indices(len(X), MAP_MAX_POINTS, seed)
    embedding = model.transform(np.asarray(X[rows]))
    projected = plotting.project_embedding(embedding, labels[rows], centroids, method=projection,
                                           n_clusters=n_clusters, random_state=seed)
    projected.indices = rows[projected.indices]
    return projected.to_dict(), partial(plotting.embedding_figure, projected)


def history_rows(session: Session, job_id: str) -> list[dict]:
    rows = session.exec(select(JobHistory).where(JobHistory.job_id == job_id).order_by(JobHistory.id)).all()
    return [{"phase": r.phase, "epoch": r.epoch, "loss": r.loss, **r.terms} for r in rows]


def _model(session: Session, models: ModelCache, job: Job) -> DeepClusterer:
    """The job's model from this process's cache (as predict uses it), or 409 once it was deleted."""
    model = None
    if job.model_id is not None:
        model = models.get(job.model_id) or models.load(job.model_id,
                                                        partial(results.inference_weights, session, job.model_id))
    if model is None:
        raise MODEL_DELETED(f"The model of job {job.id} has been deleted, and this plot needs it to "
                            "embed the samples; it was not drawn before the deletion.", {"id": job.id})
    return model


def _sample_shape(session: Session, job: Job) -> list[int]:
    for table, id_ in ((Dataset, job.dataset_id), (TrainedModel, job.model_id)):
        shape = session.exec(select(table.sample_shape).where(table.id == id_)).first() if id_ else None
        if shape is not None:
            return list(shape)
    raise _dataset_gone(job)


def _dataset_gone(job: Job) -> ApiError:
    return DATASET_DELETED(f"Dataset {job.dataset_id} of job {job.id} has been deleted, and this "
                           "plot needs its samples; it was not drawn before the deletion.", {"dataset_id": job.dataset_id})


def _assignments(session: Session, job_id: str) -> tuple[np.ndarray, np.ndarray]:
    rows = session.exec(select(Assignment.label, Assignment.confidence).where(Assignment.job_id == job_id)
                        .order_by(Assignment.index)).all()
    labels = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return labels, np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))


def _dataset(session: Session, job: Job) -> Dataset:
    dataset = session.get(Dataset, job.dataset_id)
    if dataset is None:
        raise _dataset_gone(job)
    return dataset


def _dataset_array(session: Session, store: ArtifactStore, job: Job) -> np.ndarray:
    return open_array(store.local_path(_dataset(session, job).data_key))


def _encoded_array(store: ArtifactStore, job: Job) -> np.ndarray:
    key = embeddings_key(job.dataset_id, job.encoder_id)
    if not store.exists(key):
        raise DATASET_DELETED(f"The embeddings of dataset {job.dataset_id} by encoder {job.encoder_id}, which the "
                              f"model of job {job.id} clusters, are gone (the encoder was deleted); this plot needs "
                              "them and was not drawn before.", {"dataset_id": job.dataset_id})
    return open_array(store.local_path(key))


def _dataset_labels(session: Session, store: ArtifactStore, job: Job) -> np.ndarray:
    return np.load(store.local_path(_dataset(session, job).labels_key))
