"""Predict with a stored model: loaded once per process (a small LRU), inputs checked like uploads.

Everything CPU-bound of a request -- parsing the JSON, building the array, the forward pass,
serialising the answer -- is one function (``answer_json``/``answer_array``) that the route runs
off the event loop, so a large body never blocks the other requests.
"""
from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import orjson
from pydantic import ValidationError

from deepclust.app.errors import (
    INVALID_INSTANCES,
    INVALID_REQUEST,
    MALFORMED_REQUEST,
    NON_FINITE,
    NON_NUMERIC,
    RAGGED_ROWS,
    WRONG_SHAPE,
)
from deepclust.app.trained_models.schemas import PredictIn
from deepclust.models import DeepClusterer

NPY_MEDIA_TYPE = "application/x-npy"


class ModelCache:
    """The last few models used, rebuilt from their inference weights + manifest on a miss."""

    def __init__(self, size: int, device: str):
        self.size, self.device = max(1, size), device
        self._models: OrderedDict[str, DeepClusterer] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, model_id: str) -> DeepClusterer | None:
        with self._lock:
            model = self._models.get(model_id)
            if model is not None:
                self._models.move_to_end(model_id)
            return model

    def load(self, model_id: str, read: Callable[[], tuple[bytes, dict] | None]) -> DeepClusterer | None:
        """The cached model, or the one built from ``read()`` (None when the weights are gone).

        Concurrent misses of one model wait for a single load instead of each reading its weights.
        """
        with self._lock:
            loading = self._loading.setdefault(model_id, threading.Lock())
        with loading:
            model = self.get(model_id)
            if model is None:
                stored = read()
                if stored is None:
                    return None
                model = DeepClusterer.from_bytes(*stored, device=self.device)
                self._put(model_id, model)
        with self._lock:
            self._loading.pop(model_id, None)
        return model

    def evict(self, model_ids: list[str]) -> None:
        """Forget deleted models (another process's cache is harmless: reads check the row first)."""
        with self._lock:
            for model_id in model_ids:
                self._models.pop(model_id, None)

    def _put(self, model_id: str, model: DeepClusterer) -> None:
        with self._lock:
            self._models[model_id] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)


# -- input -------------------------------------------------------------------------------------

def parse_body(body: bytes) -> list:
    """The ``instances`` of a JSON body. orjson first; the standard parser only to explain a
    refusal (it also reads NaN/Infinity, which are then refused as non-finite values, not as bad JSON)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested too deep
            reason = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            raise MALFORMED_REQUEST(f"The body is not valid JSON: {reason}") from None
    try:
        return PredictIn.model_validate(data).instances
    except ValidationError as exc:
        raise INVALID_REQUEST("The body must be {\"instances\": [[...], ...]}.",
                              {"errors": json.loads(exc.json(include_url=False, include_input=False))}) from None


def instances_array(instances: list) -> np.ndarray:
    """JSON rows as a float array, refusing what an upload would refuse."""
    try:
        X = np.asarray(instances)
    except (ValueError, TypeError):
        raise RAGGED_ROWS("The instances are ragged: every row must have the same shape.") from None
    if X.dtype.kind not in "biuf":
        raise NON_NUMERIC("Every instance value must be a number (no strings or nulls).")
    if X.ndim < 2 or X.shape[0] == 0:
        raise INVALID_INSTANCES("instances must be a non-empty list of rows, e.g. [[0.1, 0.2], [0.3, 0.4]].",
                                shape=list(X.shape))
    with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused just below
        X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise NON_FINITE("The instances contain NaN, infinity or values too large for float32.")
    return X


def check_shape(X: np.ndarray, sample_shape: list[int]) -> np.ndarray:
    """Rows shaped like the training samples, or flattened to their width."""
    width = int(np.prod(sample_shape))
    if list(X.shape[1:]) == list(sample_shape) or (X.ndim == 2 and X.shape[1] == width):
        return X
    raise WRONG_SHAPE(f"Each instance must have shape {sample_shape} (or {width} values flattened); "
                      f"got {list(X.shape[1:])}.", expected=sample_shape, got=list(X.shape[1:]))


# -- output ------------------------------------------------------------------------------------

def wants_npy(accept: str) -> bool:
    return NPY_MEDIA_TYPE in accept


def predict_arrays(model: DeepClusterer, X: np.ndarray, embeddings: bool) -> dict[str, np.ndarray]:
    proba = model.predict_proba(X)
    out = {"labels": proba.argmax(1), "probabilities": proba}
    if embeddings:
        out["embeddings"] = model.transform(X)
    return out


def to_json(out: dict[str, np.ndarray]) -> bytes:
    # float64 first: the same text json.dumps(proba.tolist()) gave, so clients read the same numbers.
    return orjson.dumps({k: v if v.dtype.kind == "i" else v.astype(np.float64) for k, v in out.items()},
                        option=orjson.OPT_SERIALIZE_NUMPY)


def to_npy(out: dict[str, np.ndarray]) -> bytes:
    """One structured ``.npy``: ``np.load(f)["labels"]``, ``["probabilities"]``, ``["embeddings"]``."""
    n = len(out["labels"])
    dtype = np.dtype([(name, "<i8" if name == "labels" else "<f4", value.shape[1:]) for name, value in out.items()])
    table = np.empty(n, dtype=dtype)
    for name, value in out.items():
        table[name] = value
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    return buffer.getvalue()


def answer(model: DeepClusterer, X: np.ndarray, embeddings: bool, npy: bool) -> bytes:
    out = predict_arrays(model, X, embeddings)
    return to_npy(out) if npy else to_json(out)


def answer_json(model: DeepClusterer, body: bytes, sample_shape: list[int], embeddings: bool, npy: bool,
                encoder=None) -> bytes:
    """A JSON request, parsed, checked and answered: the whole CPU-bound part of the request.
    ``encoder`` (an ``EncoderRunner``): the instances are images, embedded by it first."""
    X = instances_array(parse_body(body))
    if encoder is not None:
        X = encoder.run(check_shape(X, encoder.spec.image_shape))
    return answer(model, check_shape(X, sample_shape), embeddings, npy)


def predict(model: DeepClusterer, X: np.ndarray, embeddings: bool) -> dict:
    """The answer as Python lists (what the JSON body holds)."""
    return {name: value.tolist() for name, value in predict_arrays(model, X, embeddings).items()}
