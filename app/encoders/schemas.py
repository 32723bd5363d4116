"""The bodies of /v1/encoders: the encoder resource."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from deepclust.app.core.tables import Encoder

ENCODER_EXAMPLE = {"id": "enc_0123456789abcdef01234567", "name": "dinov2-small", "input_shape": [3, 224, 224],
                   "output_dim": 384, "sha256": "5d41402abc4b2a76b9719d911017c592...", "size_bytes": 88257536,
                   "created_at": "2026-12-03T09:45:00Z"}


class EncoderOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ENCODER_EXAMPLE]})

    id: str = Field(description="The encoder's id (enc_...).")
    name: str = Field(description="The name given at upload, or the file's name.")
    input_shape: list[int] = Field(description="[C, H, W] it takes: C from `color` (3 rgb, 1 grayscale), H, W "
                                               "from `input_size`.")
    output_dim: int = Field(description="D: the length of the vector it gives per image (measured on a probe batch).")
    sha256: str = Field(description="SHA-256 of the uploaded ONNX file.")
    size_bytes: int = Field(description="Size of the uploaded ONNX file.")
    created_at: datetime = Field(description="When it was uploaded (UTC).")

    @classmethod
    def of(cls, row: Encoder) -> "EncoderOut":
        return cls.model_validate(row, from_attributes=True)
