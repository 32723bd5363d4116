"""Pretrained image encoders, run through onnxruntime: the same graph in the worker's `encode`
phase, in predict and in the ONNX download, so an image is embedded alike everywhere.

An encoder takes N×C×H×W float32 (its ``input_shape``) and gives N×D. The images it embeds are a
dataset's canonical images: N×C0×H0×W0 float32 holding 8-bit pixel values 0..255. Between the two
sits a small preprocessing graph, built here in ONNX and prepended to the encoder: colour
conversion (grayscale repeated to rgb; rgb to grayscale by ITU-R 601-2 luma, like Pillow's ``L``),
bilinear resize to H×W (ONNX ``Resize``, half-pixel centres, no antialiasing), scaling to [0, 1],
then ``(x - mean) / std`` per channel. ``composed`` is that graph and the encoder as one model
with input ``pixels`` and the encoder's output; ``EncoderRunner`` runs it in batches.

Imports onnx and onnxruntime on use only (the server and worker installs carry them).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

import numpy as np

PIXELS = "pixels"  # the composed graph's input: images as 8-bit pixel values, N×C0×H0×W0 float32
_PRE_OUT = "deepclust_encoder_input"
# Operator domains an encoder may use: the standard ones (no custom operators).
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class EncoderSpec:
    """How a model on an encoder's embeddings turns images into features (``models.encoder``)."""

    id: str
    name: str
    input_shape: list[int]  # [C, H, W] the encoder takes
    output_dim: int
    color: str  # rgb | grayscale
    input_name: str
    output_name: str
    image_shape: list[int] = field(default_factory=list)  # [C0, H0, W0] of the images it is fed
    mean: list[float] | None = None
    std: list[float] | None = None
    sha256: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EncoderSpec":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def of(cls, row, image_shape: list[int]) -> "EncoderSpec":
        """The spec of an ``encoders`` row feeding images of ``image_shape``."""
        return cls(id=row.id, name=row.name, input_shape=list(row.input_shape), output_dim=int(row.output_dim),
                   color=row.color, input_name=row.input_name, output_name=row.output_name,
                   image_shape=[int(s) for s in image_shape], mean=row.mean, std=row.std, sha256=row.sha256)


def _default_opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 17


def preprocessing(spec: EncoderSpec, opset: int, ir_version: int):
    """The ONNX graph from ``pixels`` (N×C0×H0×W0, 0..255) to the encoder's input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c0, h0, w0 = spec.image_shape
    c, h, w = spec.input_shape
    nodes, inits = [], []
    x = PIXELS

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    if c0 != c:
        if c0 == 1:
            nodes.append(helper.make_node("Concat", [x] * c, ["pre_color"], axis=1, name="pre_color"))
        else:
            weight = np.zeros((1, c0, 1, 1), np.float32)
            weight[0, :3, 0, 0] = _LUMA[:c0] if c0 >= 3 else 1.0 / c0
            nodes.append(helper.make_node("Conv", [x, const("pre_luma", weight)], ["pre_color"], name="pre_color"))
        x = "pre_color"
    if (h0, w0) != (h, w):
        nodes += [helper.make_node("Shape", [x], ["pre_shape"], name="pre_shape"),
                  helper.make_node("Slice", ["pre_shape", const("pre_zero", np.array([0], np.int64)),
                                             const("pre_two", np.array([2], np.int64))], ["pre_nc"], name="pre_nc"),
                  helper.make_node("Concat", ["pre_nc", const("pre_hw", np.array([h, w], np.int64))], ["pre_sizes"],
                                   axis=0, name="pre_sizes"),
                  helper.make_node("Resize", [x, "", "", "pre_sizes"], ["pre_resized"], mode="linear",
                                   coordinate_transformation_mode="half_pixel", name="pre_resize")]
        x = "pre_resized"
    nodes.append(helper.make_node("Mul", [x, const("pre_scale", np.array(1 / 255, np.float32))], ["pre_unit"],
                                  name="pre_unit"))
    x = "pre_unit"
    mean = np.asarray(spec.mean if spec.mean is not None else [0.0] * c, np.float32).reshape(1, c, 1, 1)
    std = np.asarray(spec.std if spec.std is not None else [1.0] * c, np.float32).reshape(1, c, 1, 1)
    nodes += [helper.make_node("Sub", [x, const("pre_mean", mean)], ["pre_centred"], name="pre_centred"),
              helper.make_node("Div", ["pre_centred", const("pre_std", std)], [_PRE_OUT], name="pre_std")]
    graph = helper.make_graph(
        nodes, "deepclust_preprocessing",
        [helper.make_tensor_value_info(PIXELS, TensorProto.FLOAT, ["N", c0, h0, w0])],
        [helper.make_tensor_value_info(_PRE_OUT, TensorProto.FLOAT, ["N", c, h, w])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    onnx.checker.check_model(model)
    return model


def composed(spec: EncoderSpec, encoder_onnx: bytes):
    """Preprocessing and encoder as one ONNX model: ``pixels`` -> the encoder's output (N×D)."""
    import onnx
    from onnx import compose

    encoder = onnx.load_model_from_string(encoder_onnx)
    pre = preprocessing(spec, _default_opset(encoder), encoder.ir_version)
    # Other domains (an encoder's local functions) are the encoder's own; merge_models wants both
    # models to import the same versions of the domains they share.
    merged = compose.merge_models(pre, encoder, io_map=[(_PRE_OUT, spec.input_name)],
                                  outputs=[spec.output_name], name="deepclust_encoder")
    one_opset_per_domain(merged)
    return merged


def one_opset_per_domain(model) -> None:
    """One opset entry per domain ("" and "ai.onnx" are one), the highest: what merging leaves twice."""
    from onnx import helper

    versions: dict[str, int] = {}
    for entry in model.opset_import:
        domain = "" if entry.domain == "ai.onnx" else entry.domain
        versions[domain] = max(versions.get(domain, 0), int(entry.version))
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())


def providers(device: str) -> list:
    """onnxruntime's execution providers for ``device`` (auto|cpu|cuda|cuda:N): CUDA when asked for
    (or auto) and present, else the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class EncoderRunner:
    """The composed graph in an onnxruntime session: ``run(pixels) -> N×D float32``."""

    def __init__(self, spec: EncoderSpec, encoder_onnx: bytes, device: str = "cpu"):
        import onnxruntime as ort

        self.spec = spec
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(composed(spec, encoder_onnx).SerializeToString(), options,
                                            providers=providers(device))
        self.output = spec.output_name

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def run(self, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
        """N images (N×C0×H0×W0, or flattened rows of them) -> N×D, ``batch`` at a time."""
        x = np.asarray(pixels).reshape((-1, *self.spec.image_shape))
        outs = []
        for start in range(0, len(x), batch):
            chunk = np.ascontiguousarray(x[start:start + batch], dtype=np.float32)
            (out,) = self.session.run([self.output], {PIXELS: chunk})
            outs.append(np.asarray(out, dtype=np.float32).reshape(len(chunk), -1))
        return np.concatenate(outs) if outs else np.zeros((0, self.spec.output_dim), np.float32)


class RunnerCache:
    """The last few encoders used for predict in this process, by model id."""

    def __init__(self, size: int = 4):
        self.size = max(1, size)
        self._runners: OrderedDict[str, EncoderRunner] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, build) -> EncoderRunner:
        with self._lock:
            runner = self._runners.get(key)
            if runner is not None:
                self._runners.move_to_end(key)
                return runner
        runner = build()
        with self._lock:
            self._runners[key] = runner
            while len(self._runners) > self.size:
                self._runners.popitem(last=False)
        return runner

    def evict(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._runners.pop(key, None)
