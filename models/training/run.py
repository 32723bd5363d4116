"""Bookkeeping of one ``fit``: history rows, callbacks, and the state every checkpoint carries."""
from __future__ import annotations

import torch

from ..callbacks import CallbackList


class Run:
    """What a training phase needs to report: it appends history rows, fans out callbacks and
    builds resumable checkpoints from the phase's own state plus ``base_state``."""

    def __init__(self, callbacks: CallbackList, base_state: dict, history: list[dict] | None = None):
        self.callbacks = callbacks
        self.base_state = base_state
        self.history: list[dict] = list(history or [])

    def end_epoch(self, phase: str, epoch: int, epochs: int, sums: dict[str, torch.Tensor], count: int,
                  extra: dict[str, float] | None = None) -> dict[str, float]:
        """Turn per-sample-weighted loss sums into epoch means, record them, tell the callbacks."""
        logs = {name: float(total) / count for name, total in sums.items()}
        logs.update(extra or {})
        self.history.append({"phase": phase, "epoch": epoch, **logs})
        self.callbacks.on_epoch_end(phase, epoch, epochs, logs)
        return logs

    def checkpoint(self, **state) -> None:
        """Offer a resumable point; the state is copied to CPU only if some callback wants it."""
        if self.callbacks.wants_checkpoints:
            self.callbacks.on_checkpoint(snapshot({**self.base_state, **state, "history": self.history}))


def snapshot(obj):
    """A deep copy with every tensor cloned to CPU, so later training steps cannot change it."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


def accumulate(sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], weight: int) -> None:
    """Add detached loss terms to running sums without a host sync per batch."""
    for name, value in terms.items():
        value = value.detach() * weight
        sums[name] = sums[name] + value if name in sums else value
