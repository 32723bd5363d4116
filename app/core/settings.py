"""The one settings object, read from the environment (prefix DEEPCLUST_), shared by API and worker."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEEPCLUST_", extra="ignore")

    data_dir: Path = Path("data")
    # Empty means the embedded default: an SQLite file in data_dir.
    database_url: str = ""
    dispatcher: Literal["local", "celery"] = "local"
    broker_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "gpu"

    max_upload_bytes: int = 1 << 30
    # Ceiling for what a compressed upload (.npz, an image archive) may expand to: a zip bomb
    # stops here. For an image archive it also caps the decoded float32 array.
    max_expanded_bytes: int = 8 << 30
    # Image archives: members (files and folders) per archive, bytes of one image file (each is
    # read into memory on its own), and pixels per image, checked from the header before decoding
    # (below Pillow's own 89M-pixel bomb warning, so ours speaks first).
    max_archive_members: int = 500_000
    max_image_file_bytes: int = 64 << 20
    max_image_pixels: int = 40_000_000
    # An uploaded ONNX encoder (POST /v1/encoders): refused past this size, before the body is read whole;
    # images per onnxruntime batch in a job's encode phase.
    max_encoder_bytes: int = 1 << 30
    encode_batch_size: int = Field(64, ge=1)
    # Rows a batch prediction (POST /v1/predictions) predicts at a time: its memory stays bounded
    # by this many rows, whatever the dataset's size.
    predict_batch_size: int = Field(4096, ge=1)
    # Widest table (CSV/TSV/Parquet columns) accepted, checked from its first row or schema.
    max_columns: int = 16_384

    # "auto": off when the API is bound to a loopback address (the embedded default), on otherwise.
    auth: Literal["enabled", "disabled", "auto"] = "auto"
    host: str = "127.0.0.1"
    # When set, /metrics answers only to 'Authorization: Bearer <token>' (it shows totals, never
    # per-tenant data, but a deployment may still want it private).
    metrics_token: str = ""
    port: int = 8000

    # What a job asking for device "auto" gets on the worker, and where predict runs.
    device: str = "auto"
    heartbeat_seconds: float = 10.0
    stale_after_seconds: float = 120.0
    max_attempts: int = 3
    # An attempt lost to the infrastructure (worker gone, database unreachable) is retried, its
    # message sent again no sooner than retry_backoff_seconds * 2**(attempt - 1), capped below.
    retry_backoff_seconds: float = Field(10.0, ge=0)
    retry_backoff_max_seconds: float = Field(300.0, ge=0)
    # How long a worker keeps retrying a write it cannot do without the database (the results,
    # the final status, the requeue) before it leaves the job to the reaper.
    db_retry_seconds: float = Field(300.0, ge=0)
    # Runtime limit of one attempt of a job that sets no max_runtime_s; None: unlimited.
    max_runtime_seconds: int | None = Field(None, gt=0)
    # Runtime limit of one attempt of a batch prediction (POST /v1/predictions takes none of its
    # own); None: unlimited. Past it the prediction fails with runtime_exceeded and frees its worker.
    max_prediction_runtime_seconds: float | None = Field(None, gt=0)
    progress_interval_seconds: float = 0.5
    checkpoint_interval_seconds: float = 30.0
    reaper_interval_seconds: float = 15.0  # 0 turns the reaper off
    runner_poll_seconds: float = 0.5
    # The longest job we expect; the Redis visibility timeout must exceed it or Redis redelivers
    # a job that is still running.
    max_job_seconds: int = 24 * 3600
    model_cache_size: int = 4
    # Finished jobs older than this many days are removed with their models, results and files
    # (checked every retention_interval_seconds by the API); unset keeps everything.
    retention_days: float | None = Field(None, gt=0)
    retention_interval_seconds: float = 3600.0

    # -- holding up under load (app/http/admission.py, app/http/deps.py) ------------------------------
    # Threads that run the blocking work of requests (queries, predict); the database pool holds
    # as many connections, so a thread never waits for one (sessions live inside one thread call).
    request_threads: int = 32
    db_pool_timeout_seconds: float = 10.0
    db_connect_timeout_seconds: int = 5
    # Requests handled at once; beyond that they wait, at most max_waiting_requests of them and for
    # at most queue_timeout_seconds, then answer 503 with Retry-After instead of hanging.
    max_active_requests: int = 64
    max_waiting_requests: int = 2048
    queue_timeout_seconds: float = 10.0
    retry_after_seconds: int = 2
    # In-flight requests get this long to finish when the server stops (uvicorn's graceful shutdown).
    shutdown_grace_seconds: float = 5.0
    # A JSON body larger than this answers 413 (send large inputs as a multipart file instead),
    # nested deeper than this 400; both checked before the route parses it.
    max_json_bytes: int = 16 << 20
    max_json_depth: int = 32
    # What one job's model, optimiser and activations may need (app/jobs/budget.py); more is a 422.
    max_job_memory_bytes: int = 8 << 30

    @model_validator(mode="after")
    def _resolve_paths(self) -> "Settings":
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'deepclust.db'}"
        return self

    @property
    def auth_enabled(self) -> bool:
        if self.auth == "auto":
            return self.host not in LOOPBACK_HOSTS
        return self.auth == "enabled"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
