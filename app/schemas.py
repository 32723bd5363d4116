"""Request and response bodies of API.md, and how rows become them."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deepclust.app import pretrain
from deepclust.app.core.tables import Dataset, Job, Metrics, TrainedModel
from deepclust.models import PHASES

T = TypeVar("T")
MAX_RUNTIME_S = 7 * 24 * 3600  # the largest max_runtime_s a job may ask for

# -- examples (the OpenAPI document shows them; tests check every body has one) ---------------------
DATASET_EXAMPLE = {"id": "ds_0123456789abcdef01234567", "name": "digits", "format": "csv", "n_samples": 1797,
                   "n_features": 64, "sample_shape": [64], "has_labels": True, "n_classes": 10,
                   "sha256": "9098372...", "size_bytes": 438837, "created_at": "2026-11-23T20:57:50Z"}
JOB_EXAMPLE = {"dataset_id": "ds_0123456789abcdef01234567", "method": "dec", "n_clusters": 10,
               "params": {"hidden_dims": [128, 128], "embedding_dim": 10, "maxiter": 1500},
               "pretrain": {"epochs": 50, "batch_size": 128},
               "pretrained_from": None, "seed": 0, "device": "auto", "name": "digits-dec"}
JOB_OUT_EXAMPLE = {
    "id": "job_0123456789abcdef01234567", "dataset_id": "ds_0123456789abcdef01234567", "name": "digits-dec",
    "method": "dec", "n_clusters": 10,
    "params": {"hidden_dims": [128, 128], "embedding_dim": 10, "init": "glorot_uniform", "kmeans_n_init": 20,
               "alpha": 1.0, "maxiter": 1500, "update_interval": 140, "tol": 0.001, "batch_size": 256,
               "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "kl_reduction": "batchmean"},
    "pretrain": {"epochs": 50, "batch_size": 128, "optimizer": "adam", "lr": 0.001, "momentum": 0.9},
    "pretrained_from": None, "seed": 0, "device": "auto", "max_runtime_s": None, "status": "running",
    "phase": "pretrain",
    "progress": {"epoch": 11, "epochs": 50, "fraction": 0.11, "loss": 0.0252, "label_change": None},
    "attempts": 1, "error": None, "model_id": None, "created_at": "2026-11-23T20:58:01Z",
    "started_at": "2026-11-23T20:58:02Z", "finished_at": None}
METRICS_EXAMPLE = {"cluster_sizes": [178, 182, 177, 183, 181, 182, 181, 179, 174, 180],
                   "internal": {"silhouette": 0.682, "calinski_harabasz": 3762.7, "davies_bouldin": 0.483},
                   "external": {"acc": 0.707, "nmi": 0.749, "ari": 0.628}}
MODEL_EXAMPLE = {"id": "mdl_0123456789abcdef01234567", "job_id": "job_0123456789abcdef01234567",
                 "dataset_id": "ds_0123456789abcdef01234567", "method": "dec",
                 "params": JOB_OUT_EXAMPLE["params"], "pretrain": JOB_OUT_EXAMPLE["pretrain"], "n_clusters": 10,
                 "sample_shape": [64], "metrics": METRICS_EXAMPLE, "created_at": "2026-11-23T20:59:22Z"}


def page_example(item: dict, total: int = 1) -> dict:
    return {"items": [item], "total": total}


class Page(BaseModel, Generic[T]):
    items: list[T] = Field(description="This page's items, newest first.")
    total: int = Field(description="How many there are in all (page with limit and offset).")


class HealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})
    status: Literal["ok"] = Field(description="Always ok: the process answers.")


class ReadyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}]})
    status: Literal["ready"] = Field(description="ready: every dependency answers.")
    checks: dict[str, str] = Field(description="Each dependency (database, broker) and its state.")


class DatasetOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DATASET_EXAMPLE]})

    id: str = Field(description="The dataset's id (ds_...).")
    name: str = Field(description="The name given at upload, or the file's name.")
    format: str = Field(description="The upload's format: npy, npz, csv, tsv, parquet, or an image archive.")
    n_samples: int = Field(description="Number of samples (rows, or images).")
    n_features: int = Field(description="Values per sample (C·H·W for images).")
    sample_shape: list[int] = Field(description="Shape of one sample: [D] for features, [C, H, W] for images.")
    has_labels: bool = Field(description="Whether labels came with it (used only for evaluation metrics).")
    n_classes: int | None = Field(description="Number of distinct labels, when it has labels.")
    sha256: str = Field(description="SHA-256 of the uploaded file.")
    size_bytes: int = Field(description="Size of the uploaded file.")
    created_at: datetime = Field(description="When it was uploaded (UTC).")

    @classmethod
    def of(cls, row: Dataset) -> "DatasetOut":
        return cls.model_validate(row, from_attributes=True)


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [JOB_EXAMPLE]})

    dataset_id: str = Field(description="The dataset to cluster.")
    method: str = Field(description="A method of GET /v1/methods: kmeans, dec, idec, ...")
    # The minimum is documented, and checked with the maximum (the dataset's n_samples) by the
    # service, which answers invalid_n_clusters for both.
    n_clusters: int = Field(description="Number of clusters K, 2 <= K <= n_samples.",
                            json_schema_extra={"minimum": 2})
    params: dict[str, Any] = Field(default_factory=dict, description="The method's own params (its `params_schema` "
                                   "in GET /v1/methods; unknown keys are refused, defaults are the paper's).")
    pretrain: dict[str, Any] | None = Field(
        None, description="Autoencoder pretraining settings, e.g. {'epochs': 200, 'batch_size': 256}: the one "
                          "place for them (GET /v1/methods lists each method's `pretrain_schema`).")
    pretrained_from: str | None = Field(None, description="A succeeded job on the same dataset whose autoencoder to "
                                                          "reuse (pretraining is skipped; same architecture).")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed: the same seed gives the same labels on CPU.")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
                        description="auto (a GPU when the worker has one), cpu, cuda or cuda:N.")
    name: str | None = Field(None, max_length=200, description="A name for the job.")
    max_runtime_s: int | None = Field(
        None, ge=1, le=MAX_RUNTIME_S, strict=True,
        description="Runtime limit of each attempt, in seconds (1 to 604800, a week): past it the job is "
                    "stopped at the next epoch and fails with `runtime_exceeded`. Default: the server's "
                    "DEEPCLUST_MAX_RUNTIME_SECONDS (unset: no limit). An addition to API.md v1.")


class Progress(BaseModel):
    epoch: int | None = Field(None, description="Epochs done in the current phase.")
    epochs: int | None = Field(
        None, description="Epochs of the current phase. In `finetune` it is the most the phase can take: "
                          "`maxiter` iterations of `batch_size` samples, i.e. ceil(maxiter / ceil(n_samples / "
                          "batch_size)) epochs; the phase may stop sooner, once fewer than `tol` of the "
                          "labels change between two target updates.")
    fraction: float = Field(0.0, description="Fraction 0..1 of the whole job (pretrain 0-0.5, init 0.5-0.55, "
                                             "finetune 0.55-0.95, finalize 0.95-1).")
    loss: float | None = Field(None, description="Mean loss of the last epoch.")
    label_change: float | None = Field(None, description="Fraction of labels changed at the last target update "
                                                         "(finetune).")


class JobErrorOut(BaseModel):
    code: str = Field(description=(
        "Why the job failed. The job's own failures fail it at once: `loss_not_finite` (the loss became NaN "
        "or infinite: lower the learning rate or rescale the data), `out_of_memory` (reduce batch_size, the "
        "network or the data), `invalid_input` (the data or params), `runtime_exceeded` (past max_runtime_s), "
        "`training_failed` (anything else). Failures of the infrastructure are retried with a backoff up to "
        "the server's max attempts, then fail the job: `worker_lost` (no heartbeat: the worker process died "
        "or hung), `infrastructure_failed` (the database stayed unreachable); `worker_crashed`: the embedded "
        "runner's job process died before it took the job."),
        examples=["loss_not_finite", "out_of_memory", "invalid_input", "runtime_exceeded", "training_failed",
                  "worker_lost", "infrastructure_failed", "worker_crashed"])
    message: str = Field(description="What went wrong; GET /v1/jobs/{id}/logs has the worker's full account.")


class JobOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [JOB_OUT_EXAMPLE]})

    id: str = Field(description="The job's id (job_...).")
    dataset_id: str = Field(description="The dataset it clusters.")
    name: str | None = Field(description="The name given at creation.")
    method: str = Field(description="The method (GET /v1/methods).")
    n_clusters: int = Field(description="Number of clusters K.")
    params: dict[str, Any] = Field(description="The method's params, defaults filled in.")
    pretrain: dict[str, Any] | None = Field(description="The pretraining settings, defaults filled in; null for a "
                                                        "method without pretraining.")
    pretrained_from: str | None = Field(description="The job whose autoencoder it reuses, if any.")
    seed: int = Field(description="Random seed.")
    device: str = Field(description="The device asked for.")
    max_runtime_s: int | None = Field(None, description="Its own runtime limit per attempt in seconds, if it set "
                                                        "one (else the server's default applies).")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] = Field(
        description="queued -> running -> succeeded | failed | cancelled.")
    phase: str | None = Field(description="The training phase (models.PHASES: " + ", ".join(PHASES) + "; a "
                              "method may add its own); it keeps its last value after the job ends.",
                              examples=list(PHASES))
    progress: Progress = Field(description="Where the job is.")
    attempts: int = Field(description="How many times a worker took it (a lost worker's job is retried from "
                                      "its checkpoint).")
    error: JobErrorOut | None = Field(description="Why it failed, when it failed.")
    model_id: str | None = Field(description="Its model once it has succeeded.")
    created_at: datetime = Field(description="When it was created (UTC).")
    started_at: datetime | None = Field(description="When a worker first took it.")
    finished_at: datetime | None = Field(description="When it ended.")

    @classmethod
    def of(cls, row: Job) -> "JobOut":
        data = row.model_dump()
        data["progress"] = row.progress or {}
        data["params"], data["pretrain"] = pretrain.split(row.params)
        return cls.model_validate(data)


class HistoryRow(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"phase": "finetune", "epoch": 187, "loss": 0.2502, "kl": 0.2502, "label_change": 0.0033,
         "acc": 0.707, "nmi": 0.748}]})

    phase: str = Field(description="The training phase of the epoch.")
    epoch: int = Field(description="The epoch within its phase, from 0.")
    loss: float | None = Field(None, description="Mean loss of the epoch; every loss term follows under its own "
                                                 "name, then label_change, and acc/nmi when the dataset has labels.")


class LabelItem(BaseModel):
    index: int = Field(description="The sample's position in the dataset.")
    label: int = Field(description="Its cluster, 0..K-1 (numbering is arbitrary).")
    confidence: float = Field(description="Its largest soft assignment, 0..1.")


class LabelsPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"total": 1797, "offset": 0, "items": [{"index": 0, "label": 1, "confidence": 0.77}]}]})

    total: int = Field(description="Number of samples.")
    offset: int = Field(description="Index of the first item.")
    items: list[LabelItem] = Field(description="One item per sample, in order.")


class CentroidsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"space": "embedding", "dim": 2, "centroids": [[0.1, -1.2], [2.3, 0.4]]}]})

    space: Literal["embedding", "input"] = Field(description="embedding, or input (scaled) for k-means.")
    dim: int = Field(description="Length of each centroid.")
    centroids: list[list[float]] = Field(description="K centroids.")


class MetricsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [METRICS_EXAMPLE]})

    cluster_sizes: list[int] = Field(description="Samples per cluster (empty clusters show as 0).")
    internal: dict[str, float | None] = Field(description="silhouette, calinski_harabasz, davies_bouldin (null "
                                                          "where undefined).")
    external: dict[str, float] | None = Field(description="acc, nmi, ari against the dataset's labels; null "
                                                          "without labels.")
    silhouette_sample_size: int | None = Field(
        None, description="How many points the silhouette was computed on: a seeded sample of at most 2,000.")

    @classmethod
    def of(cls, row: Metrics) -> "MetricsOut":
        return cls(cluster_sizes=row.cluster_sizes, internal=row.internal, external=row.external,
                   silhouette_sample_size=row.silhouette_sample_size)


class ModelOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MODEL_EXAMPLE]})

    id: str = Field(description="The model's id (mdl_...).")
    job_id: str | None = Field(description="The job that trained it; null for an imported model.")
    dataset_id: str | None = Field(description="The dataset it was trained on; null for an imported model.")
    method: str = Field(description="The method.")
    params: dict[str, Any] = Field(description="The method's params.")
    pretrain: dict[str, Any] | None = Field(description="The pretraining settings; null without pretraining.")
    n_clusters: int = Field(description="Number of clusters K.")
    sample_shape: list[int] = Field(description="Shape of one input sample (rows may also come flattened).")
    metrics: MetricsOut | None = Field(description="The training job's metrics; null for an imported model.")
    created_at: datetime = Field(description="When it was made (UTC).")

    @classmethod
    def of(cls, row: TrainedModel, metrics: Metrics | None) -> "ModelOut":
        params, pretrain_block = pretrain.split(row.params)
        return cls(id=row.id, job_id=row.job_id, dataset_id=row.dataset_id, method=row.method, params=params,
                   pretrain=pretrain_block,
                   n_clusters=row.n_clusters, sample_shape=row.sample_shape,
                   metrics=MetricsOut.of(metrics) if metrics else None, created_at=row.created_at)


PREDICT_EXAMPLE = {"instances": [[0.0, 0.25, 0.5, 1.0], [1.0, 0.5, 0.25, 0.0]]}


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PREDICT_EXAMPLE]})
    instances: list[Any] = Field(description="Rows shaped like the model's sample_shape (GET /v1/models/{id}), "
                                             "flattened images allowed; the example is for a 4-feature model.")


class PredictOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"labels": [1, 8], "probabilities": [[0.02, 0.77, 0.01, 0.03, 0.02, 0.05, 0.02, 0.03, 0.03, 0.02],
                                             [0.01, 0.02, 0.01, 0.02, 0.01, 0.02, 0.01, 0.03, 0.84, 0.03]]}]})

    labels: list[int] = Field(description="The cluster of each row.")
    probabilities: list[list[float]] = Field(description="Soft assignment of each row to the K clusters (sums to 1).")
    embeddings: list[list[float]] | None = Field(None, description="The latent vector of each row, with "
                                                                   "?embeddings=true.")


class MethodOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "dec", "summary": "Deep Embedded Clustering: pretrained autoencoder, then KL(P‖Q) self-training.",
        "input_kinds": ["features", "images"],
        "params_schema": {"type": "object", "properties": {"maxiter": {"type": "integer", "default": 20000}}},
        "defaults": {"maxiter": 20000},
        "pretrain_schema": {"type": "object", "properties": {"epochs": {"type": "integer", "default": 200}}},
        "pretrain_defaults": {"epochs": 200}}]})

    name: str = Field(description="The method's name, as `method` of a job.")
    summary: str = Field(description="What it does, in a sentence.")
    input_kinds: list[Literal["features", "images"]] = Field(
        description="The dataset kinds the method trains on: 'features' (sample_shape [D]) and/or 'images' "
                    "(sample_shape [C,H,W]: image archives and (N,H,W) / (N,C,H,W) arrays).")
    params_schema: dict[str, Any] = Field(description="JSON schema of the job's `params` for this method.")
    defaults: dict[str, Any] = Field(description="Every param's default (the paper's).")
    pretrain_schema: dict[str, Any] | None = Field(
        description="JSON schema of the job's `pretrain` block; null when the method has no pretraining.")
    pretrain_defaults: dict[str, Any] | None = Field(description="Every pretraining setting's default.")

    @classmethod
    def of(cls, method) -> "MethodOut":
        params_schema, pretrain_schema = pretrain.split_schema(method.params_schema)
        defaults, pretrain_defaults = pretrain.split(method.defaults)
        return cls(name=method.name, summary=method.summary, input_kinds=list(method.input_kinds),
                   params_schema=params_schema, defaults=defaults, pretrain_schema=pretrain_schema,
                   pretrain_defaults=pretrain_defaults)


# -- sweeps (API.md, "Sweeps: choosing K and restarts without labels") --------------------------

SWEEP_EXAMPLE = {"dataset_id": "ds_0123456789abcdef01234567", "method": "idec", "params": {},
                 "pretrain": {"epochs": 50}, "n_clusters": [5, 6, 7, 8, 9, 10, 11, 12], "seeds": [0, 1, 2],
                 "selection": "stability"}


class ClusterRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int = Field(description="The smallest K.")
    max: int = Field(description="The largest K (included).")
    step: int = Field(1, ge=1, description="The step between K's.")


class SweepCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SWEEP_EXAMPLE]})

    dataset_id: str = Field(description="The dataset every job of the sweep trains on.")
    method: str = Field(description="A method of GET /v1/methods.")
    params: dict[str, Any] = Field(default_factory=dict, description="The method's own params, the same for every job.")
    pretrain: dict[str, Any] | None = Field(None, description="Pretraining settings, as for a job.")
    n_clusters: list[int] | ClusterRange | int = Field(
        description="The K's: a list, a range {'min': 5, 'max': 15, 'step': 1} (max included) or one K.")
    seeds: list[int] | None = Field(None, max_length=100, description="One job per K and seed. Default [0, 1, 2].")
    n_restarts: int | None = Field(None, ge=1, le=100, description="Instead of seeds: seeds 0 .. n_restarts-1.")
    selection: str = Field("stability", description="The criterion that picks K: stability (default), silhouette, "
                           "calinski_harabasz, davies_bouldin, or input_ + one of the last three.")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$", description="Where the jobs train.")
    name: str | None = Field(None, max_length=200, description="A name for the sweep.")

    @model_validator(mode="after")
    def _seeds_or_restarts(self):
        if self.seeds is not None and self.n_restarts is not None:
            raise ValueError("give seeds or n_restarts, not both")
        if any(not 0 <= s <= 2**31 - 1 for s in self.seeds or []):
            raise ValueError("seeds must be between 0 and 2**31 - 1")
        return self

    def cluster_values(self) -> list[int]:
        k = self.n_clusters
        if isinstance(k, ClusterRange):
            return list(range(k.min, k.max + 1, k.step))
        return [k] if isinstance(k, int) else list(k)

    def seed_values(self) -> list[int]:
        if self.n_restarts is not None:
            return list(range(self.n_restarts))
        return list(self.seeds) if self.seeds is not None else [0, 1, 2]


class SweepProgress(BaseModel):
    fraction: float = Field(description="Mean progress of the jobs, ended ones counting 1.")
    total: int = Field(description="Jobs in the sweep (one per K and seed).")
    queued: int = Field(description="Jobs waiting (or held for the pretraining they reuse).")
    running: int = Field(description="Jobs training.")
    succeeded: int = Field(description="Jobs that succeeded.")
    failed: int = Field(description="Jobs that failed.")
    cancelled: int = Field(description="Jobs cancelled.")


class SweepOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "swp_0123456789abcdef01234567", "dataset_id": "ds_0123456789abcdef01234567", "name": None,
        "method": "idec", "params": {}, "pretrain": {"epochs": 50}, "n_clusters": [9, 10, 11], "seeds": [0, 1],
        "selection": "stability", "status": "succeeded",
        "progress": {"fraction": 1.0, "total": 6, "queued": 0, "running": 0, "succeeded": 6, "failed": 0,
                     "cancelled": 0},
        "job_ids": ["job_0123456789abcdef01234567"], "result": {
            "recommended": {"n_clusters": 10, "job_id": "job_0123456789abcdef01234567", "seed": 0,
                            "model_id": "mdl_0123456789abcdef01234567"},
            "table": [{"n_clusters": 10, "seed": 0, "job_id": "job_0123456789abcdef01234567", "silhouette": 0.41,
                       "calinski_harabasz": 812.5, "davies_bouldin": 0.93, "stability": 0.97, "selected": True}]},
        "error": None, "created_at": "2026-11-23T21:00:00Z", "finished_at": "2026-11-23T21:20:00Z"}]})

    id: str = Field(description="The sweep's id.")
    dataset_id: str = Field(description="The dataset its jobs train on.")
    name: str | None = Field(description="Its name, if given.")
    method: str = Field(description="The method of every job.")
    params: dict[str, Any] = Field(description="The method's params, the same for every job (defaults filled in).")
    pretrain: dict[str, Any] | None = Field(description="The pretraining settings of every job.")
    n_clusters: list[int] = Field(description="The K's of the grid.")
    seeds: list[int] = Field(description="The seeds of the grid.")
    selection: str = Field(description="The criterion that picks K.")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] = Field(
        description="Derived from its jobs while they run; settled once they have all ended.")
    progress: SweepProgress
    job_ids: list[str] = Field(description="One job per grid point, K-major.")
    result: dict[str, Any] | None = Field(
        description="Once succeeded: {'recommended': {'n_clusters', 'job_id', 'seed', 'model_id'}, 'table': [one row "
                    "per succeeded job: n_clusters, seed, job_id, every criterion, selected, and acc/nmi/ari when "
                    "the dataset has labels (never used to choose)]}.")
    error: JobErrorOut | None = Field(description="Why the sweep failed, if it did.")
    created_at: datetime = Field(description="When it was created.")
    finished_at: datetime | None = Field(description="When it ended.")

    @classmethod
    def of(cls, row, derived: dict) -> "SweepOut":
        data = {**row.model_dump(), **derived}
        data["params"], data["pretrain"] = pretrain.split(row.params)
        return cls.model_validate(data)
