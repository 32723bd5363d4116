"""ONNX export of a fitted ``DeepClusterer``'s inference path: preprocessing, encoder, soft assignment.

The graph takes ``input``: float32 rows of shape (N, n_features) (images flattened, C·H·W) and
gives ``probabilities`` (N, n_clusters), the soft assignment whose argmax is the cluster, and
``embedding`` (N, d). The fitted input scaling is part of the graph, so raw rows go in exactly as
they go into ``predict``. Needs the optional packages ``onnx`` and ``onnxscript``
(``pip install 'deepclust[onnx]'``).
"""
from __future__ import annotations

import copy
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT, OUTPUTS = "input", ("probabilities", "embedding")
OPSET = 18


def onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))


class _InferenceGraph(nn.Module):
    def __init__(self, est):
        super().__init__()
        self.model = copy.deepcopy(est.model_).cpu().eval()
        self.sample_shape = tuple(est.sample_shape_)
        scaler = est.scaler_
        self.register_buffer("shift", torch.from_numpy(np.atleast_1d(scaler.shift).astype(np.float32)))
        self.register_buffer("scale", torch.from_numpy(np.atleast_1d(scaler.scale).astype(np.float32)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = ((x - self.shift) * self.scale).reshape((-1, *self.sample_shape))
        z = self.model.embed(x)
        return self.model.soft_assign(z), z


def to_onnx(est) -> bytes:
    """The ONNX model of ``est``'s inference path, as bytes."""
    if not onnx_available():
        raise ImportError("ONNX export needs the packages onnx and onnxscript: pip install 'deepclust[onnx]'")
    graph = _InferenceGraph(est).eval()
    example = torch.zeros(2, int(np.prod(est.sample_shape_)), dtype=torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(graph, (example,), str(path), input_names=[INPUT], output_names=list(OUTPUTS),
                              dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=OPSET,
                              dynamo=True, external_data=False, verbose=False)
        return path.read_bytes()


def export_onnx(est, path: str | os.PathLike) -> None:
    """Write ``est``'s inference path to the ONNX file ``path``."""
    Path(path).write_bytes(to_onnx(est))
