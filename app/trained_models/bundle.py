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

from deepclust.app.core.encoding import EncoderSpec, composed, one_opset_per_domain
from deepclust.app.core.ids import new_id
from deepclust.app.core.tables import TrainedModel
from deepclust.app.errors import (
    INVALID_MODEL_BUNDLE,
    ONNX_UNAVAILABLE,
    TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
)
from deepclust.app.encoders.service import checked_onnx
from deepclust.models import DeepClusterer

WEIGHTS, MANIFEST = "model.safetensors", "manifest.json"
# A model on a pretrained encoder's embeddings also carries the encoder, its preprocessing in the
# manifest's "encoder" (app/core/encoding.py's EncoderSpec).
ENCODER_FILE, ENCODER_KEY = "encoder.onnx", "encoder"
MAX_MANIFEST_BYTES = 64 << 20  # the manifest carries the training history: generous, but bounded


def bundle_zip(weights: bytes, manifest: dict, encoder: dict | None = None, encoder_onnx: bytes | None = None) -> bytes:
    """The zip; with an encoder, ``encoder.onnx`` and its preprocessing as the manifest's "encoder"."""
    if encoder is not None:
        manifest = {**manifest, ENCODER_KEY: encoder}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(WEIGHTS, weights)
        bundle.writestr(MANIFEST, json.dumps(manifest, indent=1))
        if encoder is not None and encoder_onnx is not None:
            bundle.writestr(ENCODER_FILE, encoder_onnx)
    return buffer.getvalue()


def bundle_onnx(model: DeepClusterer, encoder: dict | None = None, encoder_onnx: bytes | None = None) -> bytes:
    """The ONNX model of the inference path; with an encoder, ONE graph: preprocessing, encoder and
    clustering model, from ``pixels`` (N×C0×H0×W0 float32, 8-bit pixel values as predict takes them)
    to ``probabilities`` and ``embedding``."""
    from deepclust.models.onnx_export import onnx_available, to_onnx

    if not onnx_available():
        raise ONNX_UNAVAILABLE("ONNX export is not installed on this server: install the optional "
                               "extra there (pip install 'deepclust[onnx]'), or download the zip and export with the library.")
    clustering = to_onnx(model)
    if encoder is None or encoder_onnx is None:
        return clustering
    return compose_with_encoder(EncoderSpec.from_dict(encoder), encoder_onnx, clustering)


def compose_with_encoder(spec: EncoderSpec, encoder_onnx: bytes, clustering_onnx: bytes) -> bytes:
    import onnx
    from onnx import compose, version_converter

    front = composed(spec, encoder_onnx)
    back = onnx.load_model_from_string(clustering_onnx)
    versions = [_opset(front), _opset(back)]
    if versions[0] != versions[1]:  # one standard opset in one graph: the older graph is converted up
        if versions[0] < versions[1]:
            front = version_converter.convert_version(front, versions[1])
        else:
            back = version_converter.convert_version(back, versions[0])
    for graph in (front, back):  # one entry per domain ("" and "ai.onnx" are one), the converted version
        one_opset_per_domain(graph)
    front.ir_version = back.ir_version = max(front.ir_version, back.ir_version)
    back = compose.add_prefix(back, "cluster/", rename_outputs=False)
    (clustering_input,) = [i.name for i in back.graph.input]
    merged = compose.merge_models(front, back, io_map=[(spec.output_name, clustering_input)],
                                  outputs=[o.name for o in back.graph.output], name="deepclust_model")
    onnx.checker.check_model(merged)
    return merged.SerializeToString()


def _opset(model) -> int:
    return next((int(e.version) for e in model.opset_import if e.domain in ("", "ai.onnx")), 0)


def _bad(message: str, **details) -> ApiError:
    return INVALID_MODEL_BUNDLE(message, **details)


def read_bundle(path: Path, max_expanded_bytes: int) -> tuple[bytes, dict, bytes | None]:
    """The weights, the manifest and the encoder (if any) of an uploaded zip, or a 422 saying what is wrong."""
    if not zipfile.is_zipfile(path):
        raise UNSUPPORTED_MEDIA_TYPE("A model is imported as a zip of model.safetensors and "
                                     "manifest.json (GET /v1/models/{id}/download, or DeepClusterer.save then zip).")
    try:
        with zipfile.ZipFile(path) as bundle:
            members = {}
            for info in bundle.infolist():
                name = Path(info.filename).name
                if info.is_dir() or name not in (WEIGHTS, MANIFEST, ENCODER_FILE):
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
            encoder_onnx = _read(bundle, members[ENCODER_FILE]) if ENCODER_FILE in members else None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise _bad(f"The zip is damaged: {exc}.") from None
    try:
        manifest = json.loads(manifest_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(f"manifest.json is not JSON: {exc}.") from None
    if not isinstance(manifest, dict):
        raise _bad("manifest.json must hold a JSON object.")
    return weights, manifest, encoder_onnx


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


def checked_encoder(manifest: dict, encoder_onnx: bytes | None, model: DeepClusterer) -> dict | None:
    """The encoder spec of a bundle whose manifest names one, checked like an uploaded encoder and
    against the model (its D is the model's input width); None without one."""
    spec = manifest.pop(ENCODER_KEY, None)
    if spec is None and encoder_onnx is None:
        return None
    if not isinstance(spec, dict) or encoder_onnx is None:
        raise _bad("A bundle with an encoder holds both encoder.onnx and the manifest's \"encoder\" (its "
                   "preprocessing); this one has only one of them.")
    try:
        encoder = EncoderSpec.from_dict(spec)
        shape = [int(v) for v in encoder.input_shape]
        image = [int(v) for v in encoder.image_shape]
        ok = (len(shape) == 3 and len(image) == 3 and shape[0] in (1, 3) and image[0] in (1, 3)
              and all(0 < v <= 4096 for v in shape[1:] + image[1:]) and encoder.color in ("rgb", "grayscale")
              and all(len(v) == shape[0] for v in (encoder.mean, encoder.std) if v is not None))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise _bad("The manifest's \"encoder\" is not a valid preprocessing (input_shape, image_shape, color, "
                   "mean, std, input_name, output_name).")
    _, _, dim = checked_onnx(encoder_onnx, shape, encoder.input_name, encoder.output_name)
    if [dim] != [int(v) for v in model.sample_shape_]:
        raise _bad(f"encoder.onnx gives {dim}-vectors but the model takes samples of shape "
                   f"{list(model.sample_shape_)}.")
    encoder.output_dim = dim
    return encoder.to_dict()


def import_model(tenant: str, path: Path, max_expanded_bytes: int) -> tuple[TrainedModel, bytes, bytes | None]:
    """The model row of an uploaded bundle, its weights and its encoder (if any), checked; nothing
    is written yet."""
    weights, manifest, encoder_onnx = read_bundle(path, max_expanded_bytes)
    model = load_untrusted(weights, manifest)
    encoder = checked_encoder(manifest, encoder_onnx, model)
    row = TrainedModel(id=new_id("mdl"), tenant_id=tenant, job_id=None, dataset_id=None, method=model.method,
                       params=model.params_, n_clusters=int(model.n_clusters), sample_shape=list(model.sample_shape_),
                       manifest=manifest, encoder=encoder)
    return row, weights, encoder_onnx if encoder is not None else None
