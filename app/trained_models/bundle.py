"""A model as one zip (``model.safetensors`` + ``manifest.json``, what ``DeepClusterer.save`` writes
and ``DeepClusterer.load`` reads once unzipped), its ONNX export, and importing such a zip.

An imported bundle is untrusted. Every size it declares is checked before anything proportional
to it is built: the zip's member count from its end records (``app/datasets/ingest/zipcount.py``)
before zipfile lists them, the manifest's size and nesting before it is decoded
(``app/http/safejson.py``), then (``check_bundle``) every dimension of the network it describes (a
positive integer, bounded), the method's params against the method's schema, the scaling, the
input shape, and the network's tensors -- built on torch's ``meta`` device, which allocates
nothing -- against the safetensors header, name by name and shape by shape, so the real network is
exactly as large as the weights sent. Weights must be finite. Only then is the model rebuilt, and
it must predict before a row is written. An encoder.onnx it carries counts among the members and
within the expanded size, and is checked like an uploaded encoder.
"""
from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from deepclust.app.core.encoding import EncoderSpec, composed, one_opset_per_domain
from deepclust.app.core.ids import new_id
from deepclust.app.core.tables import TrainedModel
from deepclust.app.errors import (
    INVALID_MODEL_BUNDLE,
    ONNX_UNAVAILABLE,
    TOO_LARGE,
    TOO_MANY_MEMBERS,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
    clip,
)
from deepclust.app.datasets.ingest.zipcount import NotAZip, TooManyMembers, check_members
from deepclust.app.encoders.service import checked_onnx
from deepclust.app.http.safejson import JsonTooDeep, JsonTooLarge, loads
from deepclust.models import DeepClusterer, InvalidParams, build_network, get_method

WEIGHTS, MANIFEST = "model.safetensors", "manifest.json"
# A model on a pretrained encoder's embeddings also carries the encoder, its preprocessing in the
# manifest's "encoder" (app/core/encoding.py's EncoderSpec).
ENCODER_FILE, ENCODER_KEY = "encoder.onnx", "encoder"
MAX_MANIFEST_BYTES = 64 << 20  # the manifest carries the training history: generous, but bounded
MAX_MANIFEST_DEPTH = 32        # what save() writes nests 5 deep
MAX_BUNDLE_MEMBERS = 64        # the two files (three with encoder.onnx), and what zipping a saved directory may add
MAX_DIMENSION = 1 << 20        # any width, side, channel count or K a manifest declares
MAX_LIST = 64                  # layers in a list of widths (hidden_dims, filters)
MAX_SAMPLE_VALUES = 1 << 24    # values of one input sample (prod of sample_shape)
MAX_PARAMETERS = 1 << 30       # numbers in the whole network (4 GiB of float32)
_SCALINGS = ("auto", "none", "divide255", "minmax", "standard")  # models.preprocessing.SCALINGS
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


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
    try:  # the member count from the zip's end records, before zipfile lists the members
        check_members(path, MAX_BUNDLE_MEMBERS)
    except TooManyMembers:
        raise TOO_MANY_MEMBERS(f"The zip holds more than {MAX_BUNDLE_MEMBERS} members; a model bundle holds "
                               "model.safetensors, manifest.json and, on an encoder, encoder.onnx.",
                               limit=MAX_BUNDLE_MEMBERS) from None
    except (NotAZip, OSError) as exc:
        raise _bad(f"The zip is damaged: {exc}.") from None
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
        manifest = loads(manifest_bytes, max_bytes=MAX_MANIFEST_BYTES, max_depth=MAX_MANIFEST_DEPTH)
    except (JsonTooDeep, JsonTooLarge) as exc:
        raise _bad(f"manifest.json is refused: {exc}.") from None
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        raise _bad(f"manifest.json is not JSON: {clip(str(exc), 200)}.") from None
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


# -- what a manifest declares, checked before anything is built --------------------------------

def _dimensions(value: Any, where: str) -> None:
    """Every integer of a network spec is a dimension (a width, side, channel count, K): positive
    and bounded; lists are short; numbers finite. Checked before the spec builds anything."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not 1 <= value <= MAX_DIMENSION:
            raise _bad(f"The manifest declares {where} = {value}; every dimension of the network must be an "
                       f"integer from 1 to {MAX_DIMENSION}.", field=where, value=value if abs(value) < 2**63 else None)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(f"The manifest declares {where} = {value}; numbers must be finite.", field=where)
        return
    if isinstance(value, list):
        if len(value) > MAX_LIST:
            raise _bad(f"The manifest's {where} lists {len(value)} values; at most {MAX_LIST}.", field=where)
        for i, item in enumerate(value):
            _dimensions(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        if len(value) > MAX_LIST:
            raise _bad(f"The manifest's {where} has {len(value)} keys; at most {MAX_LIST}.", field=where)
        for key, item in value.items():
            _dimensions(item, f"{where}.{clip(str(key), 40)}")
        return
    raise _bad(f"The manifest's {where} is not a number, string, list or object.", field=where)


_NOT_WEIGHTS = "The bundle does not rebuild a model: "


def _header(weights: bytes) -> dict[str, tuple[str, list[int]]]:
    """The tensors the safetensors header declares, ``name -> (dtype, shape)``, each checked to be
    exactly as large as the bytes it points to (read with bounded JSON, before torch sees them)."""
    if len(weights) < 8:
        raise _bad(_NOT_WEIGHTS + "model.safetensors is too short to be safetensors.")
    (size,) = struct.unpack("<Q", weights[:8])
    if size > len(weights) - 8:
        raise _bad(_NOT_WEIGHTS + "model.safetensors declares a header longer than the file.")
    try:
        header = loads(weights[8:8 + size], max_bytes=size, max_depth=4)
    except ValueError as exc:
        raise _bad(_NOT_WEIGHTS + f"model.safetensors has no readable header: {clip(str(exc), 200)}.") from None
    if not isinstance(header, dict):
        raise _bad(_NOT_WEIGHTS + "model.safetensors has no readable header.")
    header.pop("__metadata__", None)
    data = len(weights) - 8 - size
    tensors = {}
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], [int(d) for d in entry["shape"]], entry["data_offsets"]
            ok = (dtype in _DTYPE_BYTES and len(shape) <= 8 and all(0 <= d <= MAX_PARAMETERS for d in shape)
                  and isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= data
                  and end - begin == math.prod(shape) * _DTYPE_BYTES[dtype])
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise _bad(_NOT_WEIGHTS + f"model.safetensors declares tensor {clip(str(name))!r} inconsistently (dtype, shape or "
                       "offsets).", tensor=clip(str(name)))
        tensors[name] = (dtype, shape)
    return tensors


def check_bundle(weights: bytes, manifest: dict) -> None:
    """Everything a manifest declares, checked by arithmetic (and a ``meta`` build, which allocates
    nothing) against limits and the weights' header; a 422 naming the first problem."""
    import torch

    if manifest.get("format_version") != 1:
        raise _bad(f"format_version {clip(str(manifest.get('format_version')))} is not one this server reads (1).")
    name = manifest.get("method")
    try:
        method = get_method(name) if isinstance(name, str) else None
    except KeyError:
        method = None
    if method is None:
        raise _bad(f"The manifest's method {clip(str(name))!r} is not a method of this server (GET /v1/methods).",
                   method=clip(str(name)))
    k = manifest.get("n_clusters")
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= MAX_DIMENSION:
        raise _bad(f"n_clusters must be an integer from 2 to {MAX_DIMENSION}.", field="n_clusters")
    shape = manifest.get("sample_shape")
    if (not isinstance(shape, list) or len(shape) not in (1, 3)
            or any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_DIMENSION for d in shape)
            or math.prod(shape) > MAX_SAMPLE_VALUES):
        raise _bad(f"sample_shape must be [D] or [C, H, W] of positive integers, at most {MAX_SAMPLE_VALUES} "
                   "values in all.", field="sample_shape")
    params = manifest.get("params")
    if not isinstance(params, dict):
        raise _bad("The manifest's params must be an object.", field="params")
    try:
        method.validate(params)
    except InvalidParams as exc:
        errors = getattr(exc, "errors", [])
        raise _bad(f"The manifest's params are not valid for method {method.name!r}: {clip(str(exc), 500)}",
                   errors=errors[:20] if isinstance(errors, list) else []) from None
    if manifest.get("scaling") not in _SCALINGS:
        raise _bad(f"The manifest's scaling {clip(str(manifest.get('scaling')))!r} is not one of {list(_SCALINGS)}.",
                   field="scaling")
    _check_scaler(manifest.get("scaler"), math.prod(shape))
    spec = manifest.get("architecture")
    if not isinstance(spec, dict):
        raise _bad("The manifest has no architecture object.", field="architecture")
    _dimensions(spec, "architecture")
    tensors = _header(weights)
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated, whatever the spec says
            network = build_network({"type": "cluster", **spec})
        expected = {f"model.{key}": list(t.shape) for key, t in network.state_dict().items()}
    except Exception as exc:  # a wrong spec can fail anywhere in the constructors
        raise _bad(f"The manifest's architecture does not build a network: {type(exc).__name__}: "
                   f"{clip(str(exc), 300)}.") from None
    count = sum(math.prod(s) for s in expected.values())
    stored = {name: shape for name, (_, shape) in tensors.items() if name.startswith("model.")}
    held = sum(math.prod(s) for s in stored.values())
    if count > MAX_PARAMETERS or count > held:
        raise _bad(f"The manifest describes a network of {count} numbers, larger than its weights ({held}); at most "
                   f"{MAX_PARAMETERS} are accepted.", parameters=count, weights=held, limit=MAX_PARAMETERS)
    if stored != expected:
        differ = sorted(set(stored) ^ set(expected)) or sorted(n for n in expected if stored[n] != expected[n])
        raise _bad(f"The manifest describes a network whose tensors do not match the weights' header (first "
                   f"difference: {clip(differ[0])!r}).", parameters=count, tensor=clip(differ[0]))


def _check_scaler(scaler: Any, width: int) -> None:
    if not isinstance(scaler, dict) or scaler.get("kind") not in _SCALINGS[1:]:
        raise _bad(f"The manifest's scaler must be an object whose kind is one of {list(_SCALINGS[1:])}.",
                   field="scaler")
    for key in ("shift", "scale"):
        value = scaler.get(key)
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) not in (1, width):
            raise _bad(f"The manifest's scaler.{key} has {len(value)} values; the input has {width}.",
                       field=f"scaler.{key}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise _bad(f"The manifest's scaler.{key} must hold finite numbers.", field=f"scaler.{key}")


def _check_finite(weights: bytes) -> None:
    from safetensors.torch import load as load_tensors

    for name, tensor in load_tensors(weights).items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise _bad(f"The weights hold NaN or infinite values (tensor {clip(name)!r}); such a model predicts "
                       "nothing meaningful.", tensor=clip(name))


def load_untrusted(weights: bytes, manifest: dict) -> DeepClusterer:
    """The model of a bundle, checked to rebuild and to predict; a 422 otherwise."""
    check_bundle(weights, manifest)  # before anything proportional to a declared size is built
    _check_finite(weights)
    try:
        model = DeepClusterer.from_bytes(weights, manifest, device="cpu")
        width = int(np.prod(model.sample_shape_))
        proba = model.predict_proba(np.zeros((1, width), dtype=np.float32))
        if proba.shape != (1, model.n_clusters):
            raise _bad("The model does not give one probability per cluster.")
    except ApiError:
        raise
    except Exception as exc:  # a wrong manifest can fail anywhere in rebuilding; say so, as a 422
        raise _bad(f"The bundle does not rebuild a model: {type(exc).__name__}: {clip(str(exc), 300)}.") from None
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
