"""Request and response bodies of API.md, and how rows become them."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from app.tables import Dataset, Job, Metrics, TrainedModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


class DatasetOut(BaseModel):
    id: str
    name: str
    format: str
    n_samples: int
    n_features: int
    sample_shape: list[int]
    has_labels: bool
    n_classes: int | None
    sha256: str
    size_bytes: int
    created_at: datetime

    @classmethod
    def of(cls, row: Dataset) -> "DatasetOut":
        return cls.model_validate(row, from_attributes=True)


JOB_EXAMPLE = {"dataset_id": "ds_0123456789abcdef01234567", "method": "dec", "n_clusters": 10,
               "params": {"maxiter": 2000, "update_interval": 140},
               "pretrain": {"epochs": 50, "batch_size": 256},
               "pretrained_from": None, "seed": 0, "device": "auto", "name": "usps-dec"}


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [JOB_EXAMPLE]})

    dataset_id: str
    method: str = Field(description="A method of GET /v1/methods: kmeans, dec, idec, ...")
    n_clusters: int = Field(description="Number of clusters K, 2 <= K <= n_samples.")
    params: dict[str, Any] = Field(default_factory=dict, description="The method's own params (GET /v1/methods).")
    pretrain: dict[str, Any] | None = Field(
        None, description="Autoencoder pretraining settings, e.g. {'epochs': 200, 'batch_size': 256}; "
                          "each key k is the method param pretrain_k.")
    pretrained_from: str | None = Field(None, description="A succeeded job on the same dataset whose autoencoder to reuse.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")
    name: str | None = Field(None, max_length=200)


class Progress(BaseModel):
    epoch: int | None = None
    epochs: int | None = None
    fraction: float = 0.0
    loss: float | None = None
    label_change: float | None = None


class JobErrorOut(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    id: str
    dataset_id: str
    name: str | None
    method: str
    n_clusters: int
    params: dict[str, Any]
    pretrained_from: str | None
    seed: int
    device: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    phase: Literal["pretrain", "init", "finetune", "finalize"] | None
    progress: Progress
    attempts: int
    error: JobErrorOut | None
    model_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Job) -> "JobOut":
        data = row.model_dump()
        data["progress"] = row.progress or {}
        return cls.model_validate(data)


class LabelItem(BaseModel):
    index: int
    label: int
    confidence: float


class LabelsPage(BaseModel):
    total: int
    offset: int
    items: list[LabelItem]


class CentroidsOut(BaseModel):
    space: Literal["embedding", "input"]
    dim: int
    centroids: list[list[float]]


class MetricsOut(BaseModel):
    cluster_sizes: list[int]
    internal: dict[str, float | None]
    external: dict[str, float] | None

    @classmethod
    def of(cls, row: Metrics) -> "MetricsOut":
        return cls(cluster_sizes=row.cluster_sizes, internal=row.internal, external=row.external)


class ModelOut(BaseModel):
    id: str
    job_id: str
    dataset_id: str
    method: str
    params: dict[str, Any]
    n_clusters: int
    sample_shape: list[int]
    metrics: MetricsOut | None
    created_at: datetime

    @classmethod
    def of(cls, row: TrainedModel, metrics: Metrics | None) -> "ModelOut":
        return cls(id=row.id, job_id=row.job_id, dataset_id=row.dataset_id, method=row.method, params=row.params,
                   n_clusters=row.n_clusters, sample_shape=row.sample_shape,
                   metrics=MetricsOut.of(metrics) if metrics else None, created_at=row.created_at)


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"instances": [[0.0, 0.5, 1.0]]}]})
    instances: list[Any] = Field(description="Rows shaped like the training samples (flattened images allowed).")


class PredictOut(BaseModel):
    labels: list[int]
    probabilities: list[list[float]]
    embeddings: list[list[float]] | None = None


class MethodOut(BaseModel):
    name: str
    summary: str
    input_kinds: list[str]
    params_schema: dict[str, Any]
    defaults: dict[str, Any]
