"""The bodies of /v1/predictions (API.md 1.2, "Batch predictions and finding runs"): the prediction to
start, its resource, and its labels page (a job's, with each sample's probabilities on request)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from deepclust.app.core.tables import Prediction
from deepclust.app.jobs.schemas import JobErrorOut, LabelItem

PREDICTION_EXAMPLE = {"model_id": "mdl_0123456789abcdef01234567", "dataset_id": "ds_0123456789abcdef01234567"}
PREDICTION_OUT_EXAMPLE = {
    "id": "prd_0123456789abcdef01234567", "model_id": "mdl_0123456789abcdef01234567",
    "dataset_id": "ds_0123456789abcdef01234567", "status": "running",
    "progress": {"done": 40960, "total": 100000, "fraction": 0.4096}, "error": None, "attempts": 1,
    "n_samples": 100000, "n_clusters": 10, "created_at": "2026-12-03T13:00:01Z",
    "started_at": "2026-12-03T13:00:02Z", "finished_at": None}


class PredictionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PREDICTION_EXAMPLE]})

    model_id: str = Field(description="The model to predict with (GET /v1/models).")
    dataset_id: str = Field(description="The stored dataset to predict, whole: features as wide as the model's "
                                        "input, or images shaped like its training images (a model on an "
                                        "encoder's embeddings: like the images its encoder was fed).")


class PredictionProgress(BaseModel):
    done: int = Field(description="Samples predicted so far.")
    total: int = Field(description="Samples of the dataset.")
    fraction: float = Field(description="done / total, 0..1.")


class PredictionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [PREDICTION_OUT_EXAMPLE]})

    id: str = Field(description="The prediction's id, prd_...")
    model_id: str = Field(description="The model it predicts with.")
    dataset_id: str = Field(description="The dataset it predicts.")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] = Field(
        description="queued -> running -> succeeded | failed | cancelled, like a job.")
    progress: PredictionProgress | None = Field(description="Samples predicted so far (null until it runs).")
    error: JobErrorOut | None = Field(description="Why it failed (the codes of a job's errors), when failed.")
    attempts: int = Field(description="How many times a worker took it (a lost worker's is resumed by the next).")
    n_samples: int = Field(description="The dataset's samples: as many labels once succeeded.")
    n_clusters: int = Field(description="The model's K: each sample's probabilities has this many.")
    created_at: datetime = Field(description="When it was queued.")
    started_at: datetime | None = Field(description="When a worker first took it.")
    finished_at: datetime | None = Field(description="When it ended.")

    @classmethod
    def of(cls, row: Prediction) -> "PredictionOut":
        return cls(id=row.id, model_id=row.model_id, dataset_id=row.dataset_id, status=row.status,
                   progress=row.progress, error=row.error, attempts=row.attempts, n_samples=row.n_samples,
                   n_clusters=row.n_clusters, created_at=row.created_at, started_at=row.started_at,
                   finished_at=row.finished_at)


class PredictionLabelItem(LabelItem):
    probabilities: list[float] | None = Field(None, description="Its soft assignment to each of the K clusters "
                                                                "(with `probabilities=true`).")


class PredictionLabelsPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"total": 1797, "offset": 0, "items": [{"index": 0, "label": 1, "confidence": 0.77}]}]})

    total: int = Field(description="Number of samples.")
    offset: int = Field(description="Index of the first item.")
    items: list[PredictionLabelItem] = Field(description="One item per sample, in order.")
