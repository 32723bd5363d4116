"""The callback protocol: the only way training talks to the outside (progress, cancel, checkpoints)."""
from __future__ import annotations

import numpy as np

from .errors import TrainingCancelled


class Callback:
    """Base class; every hook is a no-op. Subclass and override what you need."""

    def on_phase_begin(self, phase: str, epochs: int) -> None:
        """A phase (``pretrain``, ``init``, ``finetune``) starts; ``epochs`` is its length."""

    def on_epoch_end(self, phase: str, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        """An epoch ended; ``logs`` holds ``loss`` and each loss term, averaged over the epoch."""

    def on_target_update(self, iteration: int, labels: np.ndarray, label_change: float) -> None:
        """The clustering target was recomputed on the full data."""

    def should_stop(self) -> bool:
        """Polled between steps; returning True makes ``fit`` raise ``TrainingCancelled``."""
        return False

    def on_checkpoint(self, state: dict) -> None:
        """A resumable point: ``state`` can be saved with ``save_checkpoint`` and passed back
        as ``fit(..., resume_from=state)``. Called every epoch; the receiver decides how often
        to persist."""


class CallbackList(Callback):
    """Fans each hook out to several callbacks."""

    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks or ())
        # Building a checkpoint copies the model; skip it when nobody listens.
        self.wants_checkpoints = any(type(cb).on_checkpoint is not Callback.on_checkpoint for cb in self.callbacks)

    def on_phase_begin(self, phase, epochs):
        for cb in self.callbacks:
            cb.on_phase_begin(phase, epochs)

    def on_epoch_end(self, phase, epoch, epochs, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(phase, epoch, epochs, logs)

    def on_target_update(self, iteration, labels, label_change):
        for cb in self.callbacks:
            cb.on_target_update(iteration, labels, label_change)

    def should_stop(self):
        return any(cb.should_stop() for cb in self.callbacks)

    def on_checkpoint(self, state):
        for cb in self.callbacks:
            cb.on_checkpoint(state)

    def raise_if_stopped(self) -> None:
        if self.should_stop():
            raise TrainingCancelled("training was cancelled by a callback")
