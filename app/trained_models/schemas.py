"""The bodies of /v1/models: the model resource, predict's input and answer."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deepclust.app.core.tables import Metrics, TrainedModel
from deepclust.app.jobs import pretrain
from deepclust.app.jobs.schemas import JOB_OUT_EXAMPLE, METRICS_EXAMPLE, MetricsOut

MODEL_EXAMPLE = {"id": "mdl_0123456789abcdef01234567", "job_id": "job_0123456789abcdef01234567",
                 "dataset_id": "ds_0123456789abcdef01234567", "method": "dec",
                 "params": JOB_OUT_EXAMPLE["params"], "pretrain": JOB_OUT_EXAMPLE["pretrain"], "n_clusters": 10,
                 "sample_shape": [64], "metrics": METRICS_EXAMPLE, "created_at": "2026-11-23T20:59:22Z"}


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
