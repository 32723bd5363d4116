"""Bookkeeping of one ``fit``: history rows, callbacks, labels, and what every checkpoint carries."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import LossNotFinite
from .callbacks import CallbackList
from .guard import Guard


class Run:
    """What the loop and the phases report through: history rows, callbacks, the latest labels,
    and ``base_state``, the values every checkpoint carries besides the loop's own (the method
    name, the scaler, the pretrained autoencoder once there is one)."""

    def __init__(self, callbacks: CallbackList, base_state: dict, history: list[dict] | None = None,
                 guard: str = "restore"):
        self.callbacks = callbacks
        self.base_state = base_state
        self.history: list[dict] = list(history or [])
        self.last_labels: np.ndarray | None = None
        self.guard = Guard(guard)  # the degenerate-clustering guard (``models.training.guard``)

    def end_epoch(self, phase: str, epoch: int, epochs: int, sums: dict[str, torch.Tensor], count: int,
                  extra: dict[str, float] | None = None) -> dict[str, float]:
        """Turn per-sample-weighted loss sums into epoch means, record them, tell the callbacks.
        A NaN or infinite loss raises ``LossNotFinite`` here, where the sums are synced anyway."""
        logs = {name: total / count for name, total in zip(sums, host_values(sums.values()))}
        logs.update(extra or {})
        if "loss" in logs and not math.isfinite(logs["loss"]):
            raise LossNotFinite(phase, epoch, logs)
        self.history.append({"phase": phase, "epoch": epoch, **logs})
        self.callbacks.on_epoch_end(phase, epoch, epochs, logs)
        return logs

    def report_labels(self, phase: str, iteration: int, labels: np.ndarray, label_change: float | None) -> None:
        """A phase produced labels for every sample (a target update, k-means, an epoch's argmax)."""
        self.last_labels = labels
        self.callbacks.on_labels(phase, iteration, labels, label_change)

    @property
    def wants_checkpoints(self) -> bool:
        """Whether the loop builds a checkpoint now, polled once per epoch: building one copies
        the model to the host, so only when a listener says one is due
        (``Callback.checkpoint_due``), never when no callback listens."""
        return self.callbacks.wants_checkpoints and self.callbacks.checkpoint_due()

    def checkpoint(self, **state) -> None:
        """Offer a resumable point: a CPU copy of ``base_state``, ``state`` and the history."""
        if self.callbacks.wants_checkpoints:
            self.callbacks.on_checkpoint(snapshot({**self.base_state, **state, "history": self.history}))


def host_values(tensors) -> list[float]:
    """The values of 0-d tensors as Python floats, read from the device in one transfer (float32
    widened to float64 exactly, so each is ``float(tensor)``)."""
    tensors = [t.detach() for t in tensors]
    if not tensors:
        return []
    return torch.stack([t.to(torch.float64) for t in tensors]).tolist()


def snapshot(obj):
    """A deep copy with every tensor cloned to CPU, so later training steps cannot change it."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


def to_device(obj, device: torch.device):
    """``obj`` with every tensor moved to ``device`` (a checkpoint's phase state, on resume)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def accumulate(sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], weight: int) -> None:
    """Add detached loss terms to running sums without a host sync per batch."""
    for name, value in terms.items():
        value = value.detach() * weight
        sums[name] = sums[name] + value if name in sums else value
