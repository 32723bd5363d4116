"""A model as one zip (``model.safetensors`` + ``manifest.json``, what ``DeepClusterer.save`` writes
and ``DeepClusterer.load`` reads once unzipped), its ONNX export, and importing such a zip.

An imported bundle is untrusted: the zip is read in memory within size limits (no extraction),
the manifest must be JSON, the weights safetensors (never pickle), the network it describes no
larger than its weights, and the model must rebuild and predict before a row is written.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from deepclust.app.core.ids import new_id
from deepclust.app.core.tables import TrainedModel
from deepclust.app.errors import (
    INVALID_MODEL_BUNDLE,
    ONNX_UNAVAILABLE,
    TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
)
from deepclust.models import DeepClusterer

WEIGHTS, MANIFEST = "model.safetensors", "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20  # the manifest carries the training history: generous, but bounded


def bundle_zip(weights: bytes, manifest: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(WEIGHTS, weights)
        bundle.writestr(MANIFEST, json.dumps(manifest, indent=1))
    return buffer.getvalue()


def bundle_onnx(model: DeepClusterer) -> bytes:
    from deepclust.models.onnx_export import onnx_available, to_onnx

    if not onnx_available():
        raise ONNX_UNAVAILABLE("ONNX export is not installed on this server: install the optional "
                               "extra there (pip install 'deepclust[onnx]'), or download the zip and export with the library.")
    return to_onnx(model)


def _bad(message: str, **details) -> ApiError:
    return INVALID_MODEL_BUNDLE(message, **details)


def read_bundle(path: Path, max_expanded_bytes: int) -> tuple[bytes, dict]:
    """The weights and the manifest of an uploaded zip, or a 422 saying what is wrong."""
    if not zipfile.is_zipfile(path):
        raise UNSUPPORTED_MEDIA_TYPE("A model is imported as a zip of model.safetensors and "
                                     "manifest.json (GET /v1/models/{id}/download, or DeepClusterer.save then zip).")
    try:
        with zipfile.ZipFile(path) as bundle:
            members = {}
            for info in bundle.infolist():
                name = Path(info.filename).name
                if info.is_dir() or name not in (WEIGHTS, MANIFEST):
                    continue
                if name in members:
                    raise _bad(f"The zip holds {name} twice.", file=name)
                members[name] = info
            missing = [n for n in (WEIGHTS, MANIFEST) if n not in members]
            if missing:
                raise _bad(f"The zip lacks {' and '.join(missing)}; it must hold model.safetensors and manifest.json.",
                           missing=missing)
            if members[MANIFEST].file_size > MAX_MANIFEST_BYTES or sum(i.file_size for i in members.values()) > max_expanded_bytes:
                raise TOO_LARGE("The model expands beyond the server's limit (DEEPCLUST_MAX_EXPANDED_BYTES).",
                                {"limit": max_expanded_bytes})
            weights = _read(bundle, members[WEIGHTS])
            manifest_bytes = _read(bundle, members[MANIFEST])
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise _bad(f"The zip is damaged: {exc}.") from None
    try:
        manifest = json.loads(manifest_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(f"manifest.json is not JSON: {exc}.") from None
    if not isinstance(manifest, dict):
        raise _bad("manifest.json must hold a JSON object.")
    return weights, manifest


def _read(bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # The sizes in the directory can lie: read no more than they claim.
    with bundle.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise _bad(f"{info.filename} is not the size the zip says.")
    return data


def _dense_parameters(spec: dict) -> int:
    """How many numbers the network of a manifest holds, to refuse one larger than its weights
    before building it (a manifest can describe a network of any size)."""
    ae = spec.get("autoencoder")
    count = int(spec["n_clusters"]) * int(spec["embedding_dim"])
    if ae is not None:
        if ae.get("type") != "dense":
            raise _bad(f"Unknown network type {ae.get('type')!r} in the manifest.")
        dims = [int(ae["input_dim"]), *map(int, ae["hidden_dims"]), int(ae["embedding_dim"])]
        count += 2 * sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    return count


def load_untrusted(weights: bytes, manifest: dict) -> DeepClusterer:
    """The model of a bundle, checked to rebuild and to predict; a 422 otherwise."""
    try:
        if _dense_parameters(manifest["architecture"]) * 4 > len(weights):
            raise _bad("The manifest describes a network larger than its weights.")
        model = DeepClusterer.from_bytes(weights, manifest, device="cpu")
        width = int(np.prod(model.sample_shape_))
        proba = model.predict_proba(np.zeros((1, width), dtype=np.float32))
        if proba.shape != (1, model.n_clusters):
            raise _bad("The model does not give one probability per cluster.")
    except ApiError:
        raise
    except Exception as exc:  # a wrong manifest can fail anywhere in rebuilding; say so, as a 422
        raise _bad(f"The bundle does not rebuild a model: {type(exc).__name__}: {exc}.") from None
    return model


def import_model(tenant: str, path: Path, max_expanded_bytes: int) -> tuple[TrainedModel, bytes]:
    """The model row of an uploaded bundle and its weights, checked; nothing is written yet."""
    weights, manifest = read_bundle(path, max_expanded_bytes)
    model = load_untrusted(weights, manifest)
    row = TrainedModel(id=new_id("mdl"), tenant_id=tenant, job_id=None, dataset_id=None, method=model.method,
                       params=model.params_, n_clusters=int(model.n_clusters), sample_shape=list(model.sample_shape_),
                       manifest=manifest)
    return row, weights
