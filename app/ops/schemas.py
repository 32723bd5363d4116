"""The bodies of the operational routes (/healthz, /readyz) and of /v1/methods."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deepclust.app.jobs import pretrain


class HealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})
    status: Literal["ok"] = Field(description="Always ok: the process answers.")


class ReadyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}]})
    status: Literal["ready"] = Field(description="ready: every dependency answers.")
    checks: dict[str, str] = Field(description="Each dependency (database, broker) and its state.")


class MethodOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "dec", "summary": "Deep Embedded Clustering: pretrained autoencoder, then KL(P‖Q) self-training.",
        "input_kinds": ["features", "images"], "accepts_encoder": True,
        "params_schema": {"type": "object", "properties": {"maxiter": {"type": "integer", "default": 20000}}},
        "defaults": {"maxiter": 20000},
        "pretrain_schema": {"type": "object", "properties": {"epochs": {"type": "integer", "default": 200}}},
        "pretrain_defaults": {"epochs": 200}}]})

    name: str = Field(description="The method's name, as `method` of a job.")
    summary: str = Field(description="What it does, in a sentence.")
    input_kinds: list[Literal["features", "images"]] = Field(
        description="The dataset kinds the method trains on: 'features' (sample_shape [D]) and/or 'images' "
                    "(sample_shape [C,H,W]: image archives and (N,H,W) / (N,C,H,W) arrays).")
    accepts_encoder: bool = Field(False, description="Whether a job of this method may name an `encoder` (it takes "
                                                     "feature vectors: an image dataset's embeddings).")
    params_schema: dict[str, Any] = Field(description="JSON schema of the job's `params` for this method.")
    defaults: dict[str, Any] = Field(description="Every param's default (the paper's).")
    pretrain_schema: dict[str, Any] | None = Field(
        description="JSON schema of the job's `pretrain` block; null when the method has no pretraining.")
    pretrain_defaults: dict[str, Any] | None = Field(description="Every pretraining setting's default.")

    @classmethod
    def of(cls, method) -> "MethodOut":
        params_schema, pretrain_schema = pretrain.split_schema(method.params_schema)
        defaults, pretrain_defaults = pretrain.split(method.defaults)
        return cls(name=method.name, summary=method.summary, input_kinds=list(method.input_kinds),
                   accepts_encoder="features" in method.input_kinds,
                   params_schema=params_schema, defaults=defaults, pretrain_schema=pretrain_schema,
                   pretrain_defaults=pretrain_defaults)
