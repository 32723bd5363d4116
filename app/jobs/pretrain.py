"""One way to say pretraining: the job's ``pretrain`` block.

The library takes flat params, its pretraining settings prefixed ``pretrain_`` (``pretrain_epochs``,
``pretrain_batch_size``, ...). The API shows and takes them only as the ``pretrain`` block
(``{"epochs": 50, "batch_size": 256}``): ``GET /v1/methods`` lists them as a schema of their own,
job and model resources carry them under ``pretrain``, and a ``pretrain_*`` key in ``params`` is
refused with a message pointing to the block. This module is the translation, both ways.
"""
from __future__ import annotations

import json
from typing import Any

from deepclust.app.errors import INVALID_PARAMS
from deepclust.models import InvalidParams, MethodInfo

PREFIX = "pretrain_"


def split(flat: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Flat library params -> (params, pretrain block or None when the method has none)."""
    params = {k: v for k, v in flat.items() if not k.startswith(PREFIX)}
    block = {k[len(PREFIX):]: v for k, v in flat.items() if k.startswith(PREFIX)}
    return params, block or None


def split_schema(schema: dict) -> tuple[dict, dict | None]:
    """The library's flat params schema -> (params schema, pretraining schema or None)."""
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    params = {**schema, "properties": {k: v for k, v in properties.items() if not k.startswith(PREFIX)}}
    if required:
        params["required"] = [k for k in required if not k.startswith(PREFIX)]
    block = {k[len(PREFIX):]: {**v, "title": k[len(PREFIX):].replace("_", " ").capitalize()}
             for k, v in properties.items() if k.startswith(PREFIX)}
    if not block:
        return params, None
    pretrain = {"title": f"{schema.get('title', 'Method')} pretraining", "type": "object",
                "additionalProperties": False, "properties": block,
                "description": "Autoencoder pretraining settings: the job's `pretrain` block."}
    if "$defs" in schema:
        pretrain["$defs"] = schema["$defs"]
    return params, pretrain


def pretrain_names(method: MethodInfo) -> list[str]:
    return [k[len(PREFIX):] for k in method.defaults if k.startswith(PREFIX)]


def validate(method: MethodInfo, params: dict[str, Any], pretrain: dict[str, Any] | None) -> dict[str, Any]:
    """The job's params and pretrain block -> the full flat params of the library (defaults filled
    in), or a 422 naming every problem as the user wrote it (``pretrain.epochs``, not ``pretrain_epochs``)."""
    names = pretrain_names(method)
    misplaced = [k for k in params if k.startswith(PREFIX)]
    if misplaced:
        example = {k[len(PREFIX):]: params[k] for k in misplaced}
        errors = [{"param": k, "message": "pretraining settings go in the 'pretrain' block: "
                                          f"\"pretrain\": {json.dumps({k[len(PREFIX):]: params[k]})}"} for k in misplaced]
        raise INVALID_PARAMS(f"{', '.join(misplaced)}: pretraining settings go in the job's 'pretrain' "
                             f"block, not in params: send \"pretrain\": {json.dumps(example)}.", errors=errors)
    if pretrain and not names:
        raise INVALID_PARAMS(f"Method {method.name!r} has no pretraining; drop the 'pretrain' block.",
                             errors=[{"param": "pretrain", "message": f"{method.name} has no pretraining"}])
    flat = {**params, **{PREFIX + k: v for k, v in (pretrain or {}).items()}}
    try:
        return method.validate(flat)
    except InvalidParams as exc:
        errors = [_as_written(e, method, names) for e in exc.errors]
        detail = "; ".join(f"{e['param']}: {e['message']}" for e in errors)
        raise INVALID_PARAMS(f"invalid params for method '{method.name}': {detail}",
                             errors=errors) from None


def _as_written(error: dict, method: MethodInfo, names: list[str]) -> dict:
    param, message = error["param"], error["message"]
    if param.startswith(PREFIX):
        param = f"pretrain.{param[len(PREFIX):]}"
        if message.startswith("unknown parameter"):
            message = f"unknown pretraining setting; allowed: {', '.join(names)}"
    elif message.startswith("unknown parameter"):
        allowed = [k for k in method.defaults if not k.startswith(PREFIX)]
        message = f"unknown parameter; allowed: {', '.join(allowed)}"
    return {"param": param, "message": message}

