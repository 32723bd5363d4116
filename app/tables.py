"""The one definition of every table. The schema itself is created only by migrations/."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow

# Job states: queued -> running -> succeeded | failed | cancelled
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
JOB_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE_STATES = (QUEUED, RUNNING)


def created_at() -> datetime:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def job_key(primary_key: bool = False) -> str:
    """A job_id column that goes away with its job."""
    return Field(sa_column_args=[ForeignKey("jobs.id", ondelete="CASCADE")], sa_type=String,
                 primary_key=primary_key, index=not primary_key)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(primary_key=True)
    name: str
    created_at: datetime = created_at()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(sa_column_args=[ForeignKey("tenants.id", ondelete="CASCADE")],
                           sa_type=String, index=True)
    name: str
    # sha256 of the key: keys are long random strings, so a fast hash is enough and lookups are exact.
    key_hash: str = Field(unique=True)
    created_at: datetime = created_at()


class Dataset(SQLModel, table=True):
    __tablename__ = "datasets"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    name: str
    format: str
    kind: str  # "features" | "images": what a method must accept to train on it
    n_samples: int
    n_features: int
    sample_shape: list = Field(sa_type=JSON)
    # dtype of the upload before the float32 conversion: uint8 data is scaled like 8-bit pixels.
    source_dtype: str
    has_labels: bool = False
    n_classes: Optional[int] = None
    sha256: str
    size_bytes: int = Field(sa_type=BigInteger)
    data_key: str  # artifact-store keys of the canonical float32 .npy and the int64 labels
    labels_key: Optional[str] = None
    created_at: datetime = created_at()


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created_at", "status", "created_at"),)
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    # Not a foreign key: a job and its model outlive the dataset they were trained on.
    dataset_id: str = Field(index=True)
    name: Optional[str] = None
    method: str
    n_clusters: int
    params: dict = Field(sa_type=JSON)
    pretrained_from: Optional[str] = None
    seed: int = 0
    device: str = "auto"
    status: str = Field(default=QUEUED)
    phase: Optional[str] = None
    progress: Optional[dict] = Field(default=None, sa_type=JSON)
    # Incremented by every claim; a worker writes only while the row still carries its attempt,
    # so a worker that lost its job (reaped, re-claimed elsewhere) cannot overwrite the new run.
    attempts: int = 0
    worker: Optional[str] = None  # host:pid of the process running the current attempt
    heartbeat_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    cancel_requested: bool = False
    # Requeued, but the broker has not taken its message yet: the reaper sends it again until it does.
    dispatch_pending: bool = False
    error: Optional[dict] = Field(default=None, sa_type=JSON)
    model_id: Optional[str] = None
    checkpoint_key: Optional[str] = None
    created_at: datetime = created_at()
    started_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    finished_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


class JobHistory(SQLModel, table=True):
    __tablename__ = "job_history"
    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: str = job_key()
    phase: str
    epoch: int
    loss: Optional[float] = None
    terms: dict = Field(sa_type=JSON)  # every other logged value: loss terms, label_change, acc, nmi


class TrainedModel(SQLModel, table=True):
    __tablename__ = "models"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    job_id: str = Field(index=True, unique=True)
    dataset_id: str
    method: str
    params: dict = Field(sa_type=JSON)
    n_clusters: int
    sample_shape: list = Field(sa_type=JSON)
    weights: bytes = Field(sa_type=LargeBinary)  # safetensors bytes
    manifest: dict = Field(sa_type=JSON)
    created_at: datetime = created_at()


class Assignment(SQLModel, table=True):
    __tablename__ = "assignments"
    job_id: str = job_key(primary_key=True)
    index: int = Field(primary_key=True)
    label: int
    confidence: float


class Centroids(SQLModel, table=True):
    __tablename__ = "centroids"
    job_id: str = job_key(primary_key=True)
    space: str
    dim: int
    values: list = Field(sa_type=JSON)


class Metrics(SQLModel, table=True):
    __tablename__ = "metrics"
    job_id: str = job_key(primary_key=True)
    cluster_sizes: list = Field(sa_type=JSON)
    internal: dict = Field(sa_type=JSON)
    external: Optional[dict] = Field(default=None, sa_type=JSON)
