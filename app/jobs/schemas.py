"""The bodies of /v1/jobs: the job to create, the job resource, its history and results."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deepclust.app.core.tables import Job, Metrics
from deepclust.app.jobs import pretrain
from deepclust.models import PHASES

MAX_RUNTIME_S = 7 * 24 * 3600  # the largest max_runtime_s a job may ask for

# -- examples (the OpenAPI document shows them; tests check every body has one) ---------------------
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
    "pretrained_from": None, "seed": 0, "device": "auto", "max_runtime_s": None, "guard": "restore",
    "status": "running", "phase": "pretrain",
    "progress": {"epoch": 11, "epochs": 50, "fraction": 0.11, "loss": 0.0252, "label_change": None},
    "attempts": 1, "error": None, "model_id": None, "created_at": "2026-11-23T20:58:01Z",
    "started_at": "2026-11-23T20:58:02Z", "finished_at": None, "warnings": []}
HEALTH_EXAMPLE = {"nonempty_clusters": 10, "largest_cluster_fraction": 0.113, "size_entropy": 0.998,
                  "guard": "restored", "restored_epoch": 12}
K_SELECTION_EXAMPLE = {"criterion": "stadion", "chosen": 10, "table": [
    {"n_clusters": 9, "stadion": 0.171, "stadion_between": 0.68, "stadion_within": 0.509, "stability": 0.91},
    {"n_clusters": 10, "stadion": 0.187, "stadion_between": 0.68, "stadion_within": 0.493, "stability": 0.87}]}
WARNINGS_EXAMPLE = [{"code": "restored", "message": "the finetune phase degenerated after epoch 13 (clusters_emptied); "
                                                    "the result is its last healthy state, after epoch 12",
                     "details": {"phase": "finetune", "epoch": 12, "degenerated_epoch": 13,
                                 "codes": ["clusters_emptied"]}}]
METRICS_EXAMPLE = {"cluster_sizes": [178, 182, 177, 183, 181, 182, 181, 179, 174, 180],
                   "internal": {"silhouette": 0.682, "calinski_harabasz": 3762.7, "davies_bouldin": 0.483},
                   "external": {"acc": 0.707, "nmi": 0.749, "ari": 0.628}}



# A device is a name, not a number to trust: `cuda:99999999999` used to pass and fail every job
# in the worker. N stops at 127, more GPUs than one machine holds, so the pattern alone refuses
# what no worker can run; jobs and sweeps share it so both refuse the same strings.
DEVICE_PATTERN = r"^(auto|cpu|cuda(:([0-9]|[1-9][0-9]|1[01][0-9]|12[0-7]))?)$"
DEVICE_HELP = "auto (a GPU when the worker has one), cpu, cuda or cuda:N with N from 0 to 127."

class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [JOB_EXAMPLE]})

    dataset_id: str = Field(description="The dataset to cluster.")
    method: str = Field(description="A method of GET /v1/methods: kmeans, dec, idec, ...")
    # Checked with the maximum (the dataset's n_samples) by the service, which answers
    # invalid_n_clusters for both.
    n_clusters: int | Literal["auto"] = Field(
        description="Number of clusters K, 2 <= K <= n_samples; or \"auto\": after pretraining the job estimates K in "
                    "the embedding without labels (the K criterion `stadion`, over `k_range`), then trains at that K "
                    "(an addition of API 1.2).")
    k_range: list[int] | None = Field(
        None, min_length=2, max_length=2,
        description="With n_clusters \"auto\": [min, max] of the K's considered, default [2, 30], bounded by "
                    "n_samples - 1 (an addition of API 1.2).")
    guard: Literal["restore", "warn", "off"] = Field(
        "restore", description="The guard against degenerate clusterings (API 1.2): after each epoch of a clustering "
        "phase, fewer than K clusters holding samples, or one cluster over half of them (K > 2), ends the phase on "
        "the last healthy state it passed through (`restore`), or is only reported (`warn`); `off` does not look. "
        "What it did is in the job's `warnings` and `health`.")
    params: dict[str, Any] = Field(default_factory=dict, description="The method's own params (its `params_schema` "
                                   "in GET /v1/methods; unknown keys are refused, defaults are the paper's).")
    pretrain: dict[str, Any] | None = Field(
        None, description="Autoencoder pretraining settings, e.g. {'epochs': 200, 'batch_size': 256}: the one "
                          "place for them (GET /v1/methods lists each method's `pretrain_schema`).")
    pretrained_from: str | None = Field(None, description="A succeeded job on the same dataset whose autoencoder to "
                                                          "reuse (pretraining is skipped; same architecture).")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed: the same seed gives the same labels on CPU.")
    device: str = Field("auto", pattern=DEVICE_PATTERN, description=DEVICE_HELP)
    name: str | None = Field(None, max_length=200, description="A name for the job.")
    max_runtime_s: int | None = Field(
        None, ge=1, le=MAX_RUNTIME_S, strict=True,
        description="Runtime limit of each attempt, in seconds (1 to 604800, a week): past it the job is "
                    "stopped at the next epoch and fails with `runtime_exceeded`. Default: the server's "
                    "DEEPCLUST_MAX_RUNTIME_SECONDS (unset: no limit). An integer written without a fraction: "
                    "1885.0 is refused (422), as JSON Schema's `integer` cannot say. An addition to API.md v1.")
    encoder: str | None = Field(None, description="An encoder (enc_..., POST /v1/encoders) to embed the images of "
                                                  "this image dataset with first (phase `encode`; the embeddings are "
                                                  "kept and reused); the method then runs on those feature vectors, "
                                                  "so it must take features (`accepts_encoder` in GET /v1/methods).")


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
    n_clusters: int | None = Field(description="Number of clusters K: the one asked for, or the one estimated "
                                               "(n_clusters \"auto\"); null while it is being estimated.")
    params: dict[str, Any] = Field(description="The method's params, defaults filled in.")
    pretrain: dict[str, Any] | None = Field(description="The pretraining settings, defaults filled in; null for a "
                                                        "method without pretraining.")
    pretrained_from: str | None = Field(description="The job whose autoencoder it reuses, if any.")
    seed: int = Field(description="Random seed.")
    device: str = Field(description="The device asked for.")
    max_runtime_s: int | None = Field(None, description="Its own runtime limit per attempt in seconds, if it set "
                                                        "one (else the server's default applies).")
    encoder: str | None = Field(None, description="The encoder whose embeddings it clusters, if any.")
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
    guard: Literal["restore", "warn", "off"] | None = Field(
        None, description="The guard it runs with (null for a job made before there was one).")
    k_range: list[int] | None = Field(None, description="The K's considered when K is estimated (n_clusters "
                                                        "\"auto\"); null when K was given.")
    k_selection: dict[str, Any] | None = Field(
        None, description="When K was estimated: `{criterion, chosen, table: [{n_clusters, <criterion>, ..., "
                          "stability}]}` (stability: seed agreement, reproducibility, not the choice); GET "
                          "/v1/jobs/{id}/plots/k_selection.png draws it.", examples=[K_SELECTION_EXAMPLE])
    warnings: list[dict[str, Any]] = Field(
        default_factory=list,
        description="What a user without labels should know about the result, `{code, message, details}`: "
                    "`clusters_emptied` (fewer than K clusters hold samples), `cluster_dominant` (one cluster holds "
                    "more than half of the samples, K > 2), `restored` (the guard replaced the final state by an "
                    "earlier healthy one; details name the phase and epoch), `k_estimated` (K was chosen by the "
                    "service; details have the criterion and its table). A job with warnings still succeeds.",
        examples=[WARNINGS_EXAMPLE])
    health: dict[str, Any] | None = Field(
        None, description="Once succeeded: `{nonempty_clusters, largest_cluster_fraction, size_entropy (of the "
                          "cluster sizes, divided by log K), guard: restored|warned|off|null, restored_epoch?}`.",
        examples=[HEALTH_EXAMPLE])
    metrics: dict[str, float | int | None] | None = Field(
        None, description="In the jobs list (GET /v1/jobs), once succeeded: a summary of its stored metrics for "
                          "comparing runs: `acc` and `nmi` when the dataset has labels, `silhouette` (null where "
                          "undefined), `nonempty_clusters` (GET /v1/jobs/{id}/metrics has them all); null "
                          "otherwise. An addition of API 1.2.",
        examples=[{"acc": 0.707, "nmi": 0.749, "silhouette": 0.682, "nonempty_clusters": 10}])

    sweep_id: str | None = Field(None, description="The sweep that made this job (POST /v1/sweeps), null for a job "
                                                   "started on its own. An addition to API 1.2.")

    @classmethod
    def of(cls, row: Job, metrics: dict | None = None, sweep_id: str | None = None) -> "JobOut":
        data = row.model_dump()
        data["metrics"] = metrics
        data["sweep_id"] = sweep_id
        data["encoder"] = row.encoder_id
        data["progress"] = row.progress or {}
        data["warnings"] = row.warnings or []
        if row.k_range is not None and row.k_selection is None:
            data["n_clusters"] = None  # being estimated: the row holds k_range's max until K is chosen
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
