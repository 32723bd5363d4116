"""Encoders: an uploaded ONNX file, checked with onnx and onnxruntime, becomes one file in the
artifact store plus one row, or nothing; listing, deleting (guarded while a job uses it), and the
view of an image dataset through an encoder that job creation validates against.

What is refused, each with its own code: not ONNX (unparseable, fails the checker or
onnxruntime's loader), tensors kept in external data files, nodes of custom operator domains,
more or fewer than one input, an output that is not N×D on a probe batch of random images.
"""
from __future__ import annotations

import re

import numpy as np
from sqlmodel import Session, select

from deepclust.app.core.encoding import STANDARD_DOMAINS
from deepclust.app.core.ids import new_id
from deepclust.app.core.pagination import paginate
from deepclust.app.core.settings import Settings
from deepclust.app.core.storage import ArtifactStore, embeddings_key, encoder_key, encoder_prefix
from deepclust.app.core.tables import ACTIVE_STATES, Dataset, Encoder, Job
from deepclust.app.errors import (
    EMPTY_DATA,
    ENCODER_IN_USE,
    ENCODER_NOT_APPLICABLE,
    INVALID_ENCODER_OPTIONS,
    MISSING_FILE,
    NOT_ONNX,
    ONNX_CUSTOM_OPERATOR,
    ONNX_EXTERNAL_DATA,
    ONNX_INPUTS,
    ONNX_OUTPUT_SHAPE,
    clip,
)
from deepclust.app.http.uploads import UploadForm
from deepclust.app.tenancy.ownership import owned

FILE_FIELDS = ("file",)
TEXT_FIELDS = ("name", "input_size", "color", "mean", "std", "input_name", "output_name")
CHANNELS = {"rgb": 3, "grayscale": 1}
PROBE_BATCH = 2
MAX_SIDE = 4096


# -- the form's options -------------------------------------------------------------------------

def _input_size(text: str | None) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[,x×]\s*(\d+)\s*", text or "")
    if not match or not all(1 <= int(v) <= MAX_SIDE for v in match.groups()):
        raise INVALID_ENCODER_OPTIONS(f"input_size must be H,W (two integers from 1 to {MAX_SIDE}), e.g. 224,224; "
                                      f"got {clip(text or '')!r}.", field="input_size")
    return int(match[1]), int(match[2])


def _color(text: str | None) -> str:
    if text not in CHANNELS:
        raise INVALID_ENCODER_OPTIONS(f"color must be rgb or grayscale; got {clip(text or '')!r}.", field="color")
    return text


def _per_channel(name: str, text: str | None, channels: int, positive: bool) -> list[float] | None:
    if not text:
        return None
    try:
        values = [float(v) for v in text.strip().strip("[]").replace(" ", ",").split(",") if v]
    except ValueError:
        values = []
    if len(values) != channels or not all(np.isfinite(values)) or (positive and min(values) <= 0):
        raise INVALID_ENCODER_OPTIONS(f"{name} must be {channels} number{'s' if channels > 1 else ''} (one per "
                                      f"channel{', each above 0' if positive else ''}), comma-separated, e.g. "
                                      f"{'0.485,0.456,0.406' if channels == 3 else '0.5'}; got {clip(text)!r}.",
                                      field=name)
    return values


# -- the ONNX file --------------------------------------------------------------------------------

def _subgraphs(graph):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g is not None and attr.HasField("g"):
                yield from _subgraphs(attr.g)
            for sub in attr.graphs:
                yield from _subgraphs(sub)


def _tensors(model):
    from onnx import AttributeProto

    for graph in _subgraphs(model.graph):
        yield from graph.initializer
        yield from (s.values for s in graph.sparse_initializer)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.TENSOR:
                    yield attr.t
                yield from attr.tensors
    for function in model.functions:
        for node in function.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.TENSOR:
                    yield attr.t


def _load(source) -> "object":
    """The ONNX model of a file path or of bytes, without loading any external data."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        if isinstance(source, bytes):
            model = onnx.load_model_from_string(source)
        else:
            model = onnx.load(str(source), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise NOT_ONNX(f"The file is not an ONNX model: {clip(str(exc) or type(exc).__name__, 200)}.") from None
    if not model.HasField("graph") or not model.graph.node:
        raise NOT_ONNX("The file is not an ONNX model: it holds no graph (no nodes).")
    return model


def check_model(model) -> None:
    """External data and custom operator domains, refused before anything runs."""
    import onnx

    for tensor in _tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            where = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise ONNX_EXTERNAL_DATA(f"The model keeps tensor {clip(tensor.name)!r} in an external data file "
                                     f"({clip(where)!r}); save it with every tensor inside the .onnx file "
                                     "(onnx.save(model, path, save_as_external_data=False)).",
                                     tensor=clip(tensor.name), location=clip(where))
    local = {f.domain for f in model.functions}  # the model's own functions, not operators
    for graph in _subgraphs(model.graph):
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS and node.domain not in local:
                raise ONNX_CUSTOM_OPERATOR(f"Node {clip(node.name or node.op_type)!r} uses operator "
                                           f"{clip(node.op_type)!r} of the custom domain {clip(node.domain)!r}; "
                                           "only the standard ONNX operators are accepted.",
                                           op_type=clip(node.op_type), domain=clip(node.domain))
    for function in model.functions:
        for node in function.node:
            if node.domain not in STANDARD_DOMAINS and node.domain not in local:
                raise ONNX_CUSTOM_OPERATOR(f"Function {clip(function.name)!r} uses operator {clip(node.op_type)!r} "
                                           f"of the custom domain {clip(node.domain)!r}; only the standard ONNX "
                                           "operators are accepted.", op_type=clip(node.op_type),
                                           domain=clip(node.domain))
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises ValidationError, and others for odd files
        raise NOT_ONNX(f"The file is not a valid ONNX model: {clip(str(exc).splitlines()[0] if str(exc) else '', 300)}.") from None


def _io_names(model, input_name: str | None, output_name: str | None) -> tuple[str, str]:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ONNX_INPUTS(f"The model has {len(inputs)} inputs ({clip(', '.join(inputs))}); an encoder takes exactly "
                          "one, N×C×H×W float32.", inputs=inputs[:8])
    if input_name and input_name != inputs[0]:
        raise ONNX_INPUTS(f"The model has no input {clip(input_name)!r}; its input is {clip(inputs[0])!r}.",
                          inputs=inputs)
    outputs = [o.name for o in model.graph.output]
    if output_name:
        if output_name not in outputs:
            raise ONNX_OUTPUT_SHAPE(f"The model has no output {clip(output_name)!r}; its outputs are "
                                    f"{clip(', '.join(outputs))}.", outputs=outputs[:8])
        return inputs[0], output_name
    if len(outputs) != 1:
        raise ONNX_OUTPUT_SHAPE(f"The model has {len(outputs)} outputs ({clip(', '.join(outputs))}); name the one "
                                "that gives the N×D features with output_name.", outputs=outputs[:8])
    return inputs[0], outputs[0]


def _check_input_type(model, name: str, shape: list[int]) -> None:
    from onnx import TensorProto

    value = next(i for i in model.graph.input if i.name == name)
    tensor = value.type.tensor_type
    if tensor.elem_type != TensorProto.FLOAT:
        raise ONNX_INPUTS(f"The input {clip(name)!r} is not float32; an encoder takes N×C×H×W float32.")
    if tensor.HasField("shape"):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if len(dims) != 4:
            raise ONNX_INPUTS(f"The input {clip(name)!r} has {len(dims)} dimensions; an encoder takes N×C×H×W.",
                              input_dims=len(dims))
        for dim, want, what in zip(dims[1:], shape, ("channels (color)", "height (input_size)", "width (input_size)")):
            if dim is not None and dim != want:
                raise INVALID_ENCODER_OPTIONS(f"The input {clip(name)!r} takes {dims[1:]} (C,H,W) but the form says "
                                              f"{shape}: check the {what}.", expected=dims[1:], got=shape)


def _probe(data: bytes, input_name: str, output_name: str, shape: list[int]) -> int:
    """Run onnxruntime on a small random batch; the output must be N×D. Returns D."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise NOT_ONNX(f"onnxruntime cannot load the model: {clip(str(exc).splitlines()[0] if str(exc) else '', 300)}.") from None
    batch = np.random.default_rng(0).random((PROBE_BATCH, *shape), dtype=np.float32)
    try:
        (out,) = session.run([output_name], {input_name: batch})
    except Exception as exc:
        raise ONNX_INPUTS(f"The model fails on a probe batch of shape {[PROBE_BATCH, *shape]} (N,C,H,W): "
                          f"{clip(str(exc).splitlines()[0] if str(exc) else '', 300)}. Check input_size and color.",
                          probe_shape=[PROBE_BATCH, *shape]) from None
    out = np.asarray(out)
    if out.ndim != 2 or out.shape[0] != PROBE_BATCH or out.shape[1] < 1:
        raise ONNX_OUTPUT_SHAPE(f"On a probe batch of {PROBE_BATCH} images the output {clip(output_name)!r} has "
                                f"shape {list(out.shape)}; an encoder gives one vector per image, N×D.",
                                shape=list(out.shape))
    if out.dtype.kind != "f" or not np.isfinite(out).all():
        raise ONNX_OUTPUT_SHAPE(f"On a probe batch the output {clip(output_name)!r} is not finite float vectors "
                                f"(dtype {out.dtype}).", dtype=str(out.dtype))
    return int(out.shape[1])


def checked_onnx(data: bytes, shape: list[int], input_name: str | None = None,
                 output_name: str | None = None) -> tuple[str, str, int]:
    """Every check of an encoder's ONNX bytes fed ``shape`` [C, H, W] (an upload, or the encoder in
    an imported model bundle): its input and output names and its output dimension D, or a 4xx."""
    model = _load(data)
    check_model(model)
    input_name, output_name = _io_names(model, input_name, output_name)
    _check_input_type(model, input_name, shape)
    del model
    return input_name, output_name, _probe(data, input_name, output_name, shape)


def create_encoder(session: Session, store: ArtifactStore, settings: Settings, tenant: str,
                   form: UploadForm) -> Encoder:
    upload = form.files.get("file")
    if upload is None:
        raise MISSING_FILE("The form has no 'file' part; send the ONNX model as multipart field 'file'.")
    if upload.size == 0:
        raise EMPTY_DATA("The uploaded file is empty.")
    fields = form.fields
    height, width = _input_size(fields.get("input_size"))
    color = _color(fields.get("color"))
    shape = [CHANNELS[color], height, width]
    mean = _per_channel("mean", fields.get("mean"), shape[0], positive=False)
    std = _per_channel("std", fields.get("std"), shape[0], positive=True)
    input_name, output_name, output_dim = checked_onnx(upload.path.read_bytes(), shape,
                                                       fields.get("input_name") or None,
                                                       fields.get("output_name") or None)
    encoder_id = new_id("enc")
    row = Encoder(id=encoder_id, tenant_id=tenant, name=fields.get("name") or upload.filename, input_shape=shape,
                  output_dim=output_dim, color=color, mean=mean, std=std, input_name=input_name,
                  output_name=output_name, sha256=upload.sha256, size_bytes=upload.size,
                  file_key=encoder_key(encoder_id))
    store.publish(upload.path, row.file_key)  # the file first: a row never points at a missing file
    try:
        session.add(row)
        session.commit()
    except BaseException:
        session.rollback()
        store.delete_prefix(encoder_prefix(encoder_id))
        raise
    return row


def list_encoders(session: Session, tenant: str, limit: int, offset: int) -> tuple[list[Encoder], int]:
    return paginate(session, Encoder, Encoder.tenant_id == tenant, limit=limit, offset=offset)


def delete_encoder(session: Session, store: ArtifactStore, tenant: str, encoder_id: str) -> None:
    """Delete an encoder, its file and the embeddings made with it; 409 while a queued or running
    job uses it. Models trained on it keep their own copy and still predict."""
    encoder = owned(session, Encoder, encoder_id, tenant)
    busy = list(session.exec(select(Job.id).where(Job.encoder_id == encoder_id,
                                                  Job.status.in_(ACTIVE_STATES))).all())
    if busy:
        plural = len(busy) > 1
        raise ENCODER_IN_USE(f"Job{'s' if plural else ''} {', '.join(busy)} use{'' if plural else 's'} this encoder "
                             f"and {'are' if plural else 'is'} queued or running; cancel {'them' if plural else 'it'} "
                             "or wait for the end, then delete the encoder.", {"job_ids": busy})
    datasets = list(session.exec(select(Job.dataset_id).where(Job.encoder_id == encoder_id).distinct()).all())
    session.delete(encoder)
    session.commit()
    store.delete_prefix(encoder_prefix(encoder_id))
    for dataset_id in datasets:
        store.delete_prefix(embeddings_key(dataset_id, encoder_id))


# -- jobs on an encoder ---------------------------------------------------------------------------

def encoded_view(session: Session, tenant: str, dataset: Dataset, encoder_id: str, method_name: str) -> Dataset:
    """The dataset as the method will see it through the encoder: features of width D (a row not
    in the session, for validation only); a 404 or 422 when the pair does not fit."""
    from deepclust.models import get_method

    encoder = owned(session, Encoder, encoder_id, tenant)
    if dataset.kind != "images" or len(dataset.sample_shape) != 3:
        raise ENCODER_NOT_APPLICABLE(f"An encoder embeds images; dataset {dataset.id} holds {dataset.kind} "
                                     f"(sample_shape {list(dataset.sample_shape)}). Drop 'encoder', or upload "
                                     "an image archive.", dataset_id=dataset.id, kind=dataset.kind)
    if dataset.source_dtype != "uint8":
        raise ENCODER_NOT_APPLICABLE(f"Dataset {dataset.id} holds images that are not 8-bit pixels "
                                     f"({dataset.source_dtype}); an encoder's preprocessing scales 0..255 pixels "
                                     "to [0, 1]. Upload the images as an archive or a uint8 array.",
                                     dataset_id=dataset.id, source_dtype=dataset.source_dtype)
    try:
        method = get_method(method_name)
    except KeyError:
        method = None  # the job's own validation names the unknown method
    if method is not None and "features" not in method.input_kinds:
        raise ENCODER_NOT_APPLICABLE(f"Method {method.name!r} does not take feature vectors, so it cannot run on "
                                     "an encoder's embeddings; GET /v1/methods says which methods accept an "
                                     "encoder (accepts_encoder).", method=method.name)
    view = Dataset.model_validate(dataset.model_dump())
    view.kind, view.sample_shape, view.n_features = "features", [encoder.output_dim], encoder.output_dim
    view.source_dtype = "float32"
    return view
