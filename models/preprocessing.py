"""Input scaling that belongs to the fitted model and is replayed identically at predict time."""
from __future__ import annotations

import numpy as np
import torch

SCALINGS = ("auto", "none", "divide255", "minmax", "standard")
_CHUNK = 8192


class Scaler:
    """A per-feature affine map ``x' = (x - shift) * scale`` fitted on the training data.

    ``auto`` resolves to ``divide255`` for uint8 input (8-bit images) and ``none`` otherwise.
    ``minmax`` maps each feature to [0, 1] (CDC's MinMaxScaler); ``standard`` to zero mean and
    unit variance. Constant features keep scale 1.
    """

    def __init__(self, kind: str, shift: np.ndarray | float = 0.0, scale: np.ndarray | float = 1.0):
        if kind not in SCALINGS or kind == "auto":
            raise ValueError(f"unknown scaling {kind!r}; use one of {SCALINGS}")
        self.kind = kind
        self.shift = np.asarray(shift, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self._device_cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def fit(cls, X: np.ndarray, kind: str) -> "Scaler":
        if kind == "auto":
            kind = "divide255" if X.dtype == np.uint8 else "none"
        if kind == "none":
            return cls("none")
        if kind == "divide255":
            return cls("divide255", 0.0, 1.0 / 255.0)
        flat = X.reshape(len(X), -1)
        if kind == "minmax":
            lo = np.full(flat.shape[1], np.inf)
            hi = np.full(flat.shape[1], -np.inf)
            for start in range(0, len(flat), _CHUNK):
                chunk = flat[start:start + _CHUNK].astype(np.float64)
                lo = np.minimum(lo, chunk.min(0))
                hi = np.maximum(hi, chunk.max(0))
            span = hi - lo
            return cls("minmax", lo, 1.0 / np.where(span > 0, span, 1.0))
        if kind == "standard":
            total = np.zeros(flat.shape[1])
            total_sq = np.zeros(flat.shape[1])
            for start in range(0, len(flat), _CHUNK):
                chunk = flat[start:start + _CHUNK].astype(np.float64)
                total += chunk.sum(0)
                total_sq += (chunk ** 2).sum(0)
            mean = total / len(flat)
            std = np.sqrt(np.maximum(total_sq / len(flat) - mean ** 2, 0.0))
            return cls("standard", mean, 1.0 / np.where(std > 0, std, 1.0))
        raise ValueError(f"unknown scaling {kind!r}; use one of {SCALINGS}")

    def to_manifest(self) -> dict:
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_manifest(cls, d: dict) -> "Scaler":
        return cls(d["kind"], np.asarray(d["shift"], np.float32), np.asarray(d["scale"], np.float32))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Scale a float32 batch (any shape with the sample axis first)."""
        if self.kind == "none":
            return x
        if x.device not in self._device_cache:
            self._device_cache[x.device] = (
                torch.from_numpy(self.shift).to(x.device),
                torch.from_numpy(self.scale).to(x.device),
            )
        shift, scale = self._device_cache[x.device]
        flat = x.reshape(len(x), -1)
        return ((flat - shift) * scale).reshape(x.shape)

    def __getstate__(self):  # keep device tensors out of copies and pickles
        state = self.__dict__.copy()
        state["_device_cache"] = {}
        return state
