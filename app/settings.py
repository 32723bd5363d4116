"""The one settings object, read from the environment (prefix DEEPCLUST_), shared by API and worker."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
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
    # Ceiling for what a compressed upload (.npz) may expand to: a zip bomb stops here.
    max_expanded_bytes: int = 8 << 30

    # "auto": off when the API is bound to a loopback address (the embedded default), on otherwise.
    auth: Literal["enabled", "disabled", "auto"] = "auto"
    host: str = "127.0.0.1"
    port: int = 8000

    # What a job asking for device "auto" gets on the worker, and where predict runs.
    device: str = "auto"
    heartbeat_seconds: float = 10.0
    stale_after_seconds: float = 120.0
    max_attempts: int = 3
    progress_interval_seconds: float = 0.5
    checkpoint_interval_seconds: float = 30.0
    reaper_interval_seconds: float = 15.0  # 0 turns the reaper off
    runner_poll_seconds: float = 0.5
    # The longest job we expect; the Redis visibility timeout must exceed it or Redis redelivers
    # a job that is still running.
    max_job_seconds: int = 24 * 3600
    model_cache_size: int = 4

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
