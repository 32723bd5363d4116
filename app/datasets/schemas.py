"""The bodies of /v1/datasets: the dataset resource."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from deepclust.app.core.tables import Dataset
from deepclust.app.datasets.ingest import formats
from deepclust.app.datasets.ingest.formats import ARRAY, TABLE

# The OpenAPI document shows it; tests check every body has one.
DATASET_EXAMPLE = {"id": "ds_0123456789abcdef01234567", "name": "digits", "format": "csv", "n_samples": 1797,
                   "n_features": 64, "sample_shape": [64], "has_labels": True, "n_classes": 10,
                   "sha256": "9098372...", "size_bytes": 438837, "created_at": "2026-11-23T20:57:50Z"}


class DatasetOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DATASET_EXAMPLE]})

    id: str = Field(description="The dataset's id (ds_...).")
    name: str = Field(description="The name given at upload, or the file's name.")
    format: str = Field(description=f"The upload's format: {', '.join(formats.names(ARRAY, TABLE))}, or an image "
                                    "archive.")
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
