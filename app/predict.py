"""Predict with a stored model: loaded once per process (a small LRU), inputs checked like uploads."""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from app.errors import invalid
from app.tables import TrainedModel
from models import DeepClusterer


class ModelCache:
    """The last few models used, rebuilt from their safetensors bytes + manifest on a miss."""

    def __init__(self, size: int, device: str):
        self.size, self.device = max(1, size), device
        self._models: OrderedDict[str, DeepClusterer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, row: TrainedModel) -> DeepClusterer:
        with self._lock:
            if row.id in self._models:
                self._models.move_to_end(row.id)
                return self._models[row.id]
        model = DeepClusterer.from_bytes(row.weights, row.manifest, device=self.device)
        with self._lock:
            self._models[row.id] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model


def instances_array(instances: list) -> np.ndarray:
    """JSON rows as a float array, refusing what an upload would refuse."""
    try:
        X = np.asarray(instances)
    except ValueError:
        raise invalid("ragged_rows", "The instances are ragged: every row must have the same shape.") from None
    if X.dtype.kind not in "biuf":
        raise invalid("non_numeric", "Every instance value must be a number (no strings or nulls).")
    if X.ndim < 2 or X.shape[0] == 0:
        raise invalid("invalid_instances", "instances must be a non-empty list of rows, e.g. [[0.1, 0.2], [0.3, 0.4]].",
                      shape=list(X.shape))
    X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise invalid("non_finite", "The instances contain NaN, infinity or values too large for float32.")
    return X


def check_shape(X: np.ndarray, sample_shape: list[int]) -> np.ndarray:
    """Rows shaped like the training samples, or flattened to their width."""
    width = int(np.prod(sample_shape))
    if list(X.shape[1:]) == list(sample_shape) or (X.ndim == 2 and X.shape[1] == width):
        return X
    raise invalid("wrong_shape", f"Each instance must have shape {sample_shape} (or {width} values flattened); "
                  f"got {list(X.shape[1:])}.", expected=sample_shape, got=list(X.shape[1:]))


def predict(model: DeepClusterer, X: np.ndarray, embeddings: bool) -> dict:
    proba = model.predict_proba(X)
    out = {"labels": proba.argmax(1).tolist(), "probabilities": proba.tolist()}
    if embeddings:
        out["embeddings"] = model.transform(X).tolist()
    return out
