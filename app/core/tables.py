"""The one definition of every table. The schema itself is created only by migrations/."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String
from sqlmodel import Field, SQLModel

from deepclust.app.core.db import UTCDateTime, utcnow

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
    expires_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)  # None: never
    revoked_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


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
    # A requeued job's message is sent no earlier than this (retry backoff; None: at once).
    not_before: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    # The job's own runtime limit per attempt (None: the worker's DEEPCLUST_MAX_RUNTIME_SECONDS).
    max_runtime_s: Optional[int] = None
    # The encoder that embeds the dataset's images first (a job on pretrained features), if any.
    encoder_id: Optional[str] = Field(default=None, index=True)
    # Held: neither dispatched nor claimable until that job has ended (a sweep's job waiting to
    # reuse its seed's pretrained autoencoder); app/core/sweepstate.py releases it.
    waits_for: Optional[str] = Field(default=None, index=True)
    error: Optional[dict] = Field(default=None, sa_type=JSON)
    # The guard against degenerate clusterings: restore | warn | off (None: a job made before it).
    guard: Optional[str] = None
    # Set when K is estimated ("n_clusters": "auto"): [min, max]; n_clusters is then the chosen K
    # once k_selection ({criterion, chosen, table}) is written, k_range's max before.
    k_range: Optional[list] = Field(default=None, sa_type=JSON)
    k_selection: Optional[dict] = Field(default=None, sa_type=JSON)
    # Written with the results: [{code, message, details}] and the result's label-free health.
    warnings: Optional[list] = Field(default=None, sa_type=JSON)
    health: Optional[dict] = Field(default=None, sa_type=JSON)
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
    """What a model is; its weights live in ``model_weights``, read only to (re)build the network."""

    __tablename__ = "models"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    # Both None for a model imported with POST /v1/models (trained elsewhere).
    job_id: Optional[str] = Field(default=None, index=True, unique=True)
    dataset_id: Optional[str] = None
    method: str
    params: dict = Field(sa_type=JSON)
    n_clusters: int
    sample_shape: list = Field(sa_type=JSON)
    manifest: dict = Field(sa_type=JSON)
    # A model trained on an encoder's embeddings: that encoder's preprocessing and the images it takes
    # (app/core/encoding.py's EncoderSpec); its ONNX bytes are the weights part ENCODER. None otherwise.
    encoder: Optional[dict] = Field(default=None, sa_type=JSON)
    created_at: datetime = created_at()


# The parts of a model's safetensors bytes, each its own row: predict reads only "inference";
# "pretrained" (the pretrained autoencoder, several times larger) only seeds another job.
INFERENCE, PRETRAINED = "inference", "pretrained"
# A model on pretrained features also keeps its encoder (ONNX bytes), read by predict and the bundle.
ENCODER = "encoder"


class ModelWeights(SQLModel, table=True):
    __tablename__ = "model_weights"
    model_id: str = Field(sa_column_args=[ForeignKey("models.id", ondelete="CASCADE")], sa_type=String,
                          primary_key=True)
    part: str = Field(primary_key=True)
    sha256: str
    size_bytes: int = Field(sa_type=BigInteger)
    data: bytes = Field(sa_type=LargeBinary)  # safetensors bytes


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
    # How many points the silhouette was computed on (a seeded sample); None for rows stored before it was kept.
    silhouette_sample_size: Optional[int] = None


class Sweep(SQLModel, table=True):
    """A grid of jobs over K and seeds; status, progress and result come from its jobs."""
    __tablename__ = "sweeps"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    dataset_id: str = Field(index=True)  # not a foreign key, like a job's
    name: Optional[str] = None
    method: str
    params: dict = Field(sa_type=JSON)  # validated, the same for every job
    n_clusters: list = Field(sa_type=JSON)
    seeds: list = Field(sa_type=JSON)
    selection: str
    device: str = "auto"
    # queued until it ends (the API derives running from the jobs), then its final status
    status: str = Field(default=QUEUED, index=True)
    cancel_requested: bool = False
    result: Optional[dict] = Field(default=None, sa_type=JSON)
    error: Optional[dict] = Field(default=None, sa_type=JSON)
    created_at: datetime = created_at()
    finished_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


class SweepJob(SQLModel, table=True):
    """One grid point of a sweep: its (K, seed) and the job that trains it."""
    __tablename__ = "sweep_jobs"
    sweep_id: str = Field(sa_column_args=[ForeignKey("sweeps.id", ondelete="CASCADE")], sa_type=String,
                          primary_key=True)
    job_id: str = Field(sa_column_args=[ForeignKey("jobs.id", ondelete="CASCADE")], sa_type=String,
                        primary_key=True, index=True)
    n_clusters: int
    seed: int
    position: int  # order of the grid: K-major, as the sweep lists its job_ids


class Encoder(SQLModel, table=True):
    """A tenant's pretrained image encoder: an ONNX file in the artifact store and how to feed it."""
    __tablename__ = "encoders"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    name: str
    input_shape: list = Field(sa_type=JSON)  # [C, H, W] it takes
    output_dim: int
    color: str  # "rgb" | "grayscale"
    mean: Optional[list] = Field(default=None, sa_type=JSON)  # per channel, after scaling pixels to [0, 1]
    std: Optional[list] = Field(default=None, sa_type=JSON)
    input_name: str
    output_name: str
    sha256: str
    size_bytes: int = Field(sa_type=BigInteger)
    file_key: str
    created_at: datetime = created_at()


class Prediction(SQLModel, table=True):
    """A batch prediction: a model applied to a whole stored dataset in the workers, batch by batch.
    Its labels and probabilities are files of the artifact store (storage.prediction_key); the row
    follows a job's state machine (app/core/predictionstate.py), fenced by ``attempts`` the same way."""
    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_status_created_at", "status", "created_at"),)
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    # Neither is a foreign key, like a job's dataset: a finished prediction outlives its model.
    model_id: str = Field(index=True)
    dataset_id: str = Field(index=True)
    status: str = Field(default=QUEUED)
    progress: Optional[dict] = Field(default=None, sa_type=JSON)  # {done, total, fraction}: samples predicted
    attempts: int = 0
    worker: Optional[str] = None
    heartbeat_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    cancel_requested: bool = False
    dispatch_pending: bool = False
    not_before: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    error: Optional[dict] = Field(default=None, sa_type=JSON)
    n_samples: int = 0
    n_clusters: int = 0
    created_at: datetime = created_at()
    started_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    finished_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
