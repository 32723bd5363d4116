"""The bodies of /v1/sweeps (API.md, "Sweeps: choosing K and restarts without labels")."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deepclust.app.jobs import pretrain
from deepclust.app.jobs.schemas import DEVICE_HELP, DEVICE_PATTERN, JobErrorOut

SWEEP_EXAMPLE = {"dataset_id": "ds_0123456789abcdef01234567", "method": "idec", "params": {},
                 "pretrain": {"epochs": 50}, "n_clusters": [5, 6, 7, 8, 9, 10, 11, 12], "seeds": [0, 1, 2],
                 "selection": "stadion"}


class ClusterRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int = Field(description="The smallest K.")
    max: int = Field(description="The largest K (included).")
    step: int = Field(1, ge=1, description="The step between K's.")


class SweepCreate(BaseModel):
    # Seeds or n_restarts, not both: the `not` tells a client's validator what _seeds_or_restarts refuses.
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [SWEEP_EXAMPLE],
        "not": {"required": ["seeds", "n_restarts"],
                "properties": {"seeds": {"type": "array"}, "n_restarts": {"type": "integer"}}}})

    dataset_id: str = Field(description="The dataset every job of the sweep trains on.")
    method: str = Field(description="A method of GET /v1/methods.")
    params: dict[str, Any] = Field(default_factory=dict, description="The method's own params, the same for every job.")
    pretrain: dict[str, Any] | None = Field(None, description="Pretraining settings, as for a job.")
    n_clusters: list[int] | ClusterRange | int = Field(
        description="The K's: a list, a range {'min': 5, 'max': 15, 'step': 1} (max included) or one K.")
    seeds: list[int] | None = Field(None, max_length=100, description="One job per K and seed. Default [0, 1, 2].")
    n_restarts: int | None = Field(None, ge=1, le=100, description="Instead of seeds: seeds 0 .. n_restarts-1.")
    selection: str = Field("stadion", description="The criterion that picks K: stadion (default: between-minus-"
                           "within stability of each run in its embedding, Mourer et al. 2023, which also sees a K "
                           "that is too small), stability (seed agreement: mean pairwise ARI between the seeds of a "
                           "K; always in the table, as reproducibility), silhouette, calinski_harabasz, "
                           "davies_bouldin, or input_ + one of the last three.")
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="Where the jobs train: " + DEVICE_HELP)
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
        "selection": "stadion", "status": "succeeded",
        "progress": {"fraction": 1.0, "total": 6, "queued": 0, "running": 0, "succeeded": 6, "failed": 0,
                     "cancelled": 0},
        "job_ids": ["job_0123456789abcdef01234567"], "result": {
            "recommended": {"n_clusters": 10, "job_id": "job_0123456789abcdef01234567", "seed": 0,
                            "model_id": "mdl_0123456789abcdef01234567"},
            "table": [{"n_clusters": 10, "seed": 0, "job_id": "job_0123456789abcdef01234567", "silhouette": 0.41,
                       "calinski_harabasz": 812.5, "davies_bouldin": 0.93, "stadion": 0.41, "stability": 0.97, "selected": True}]},
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
