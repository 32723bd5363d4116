"""The callback protocol: the only way training talks to the outside (progress, cancel, checkpoints)."""
from __future__ import annotations

import numpy as np

from ..errors import TrainingCancelled


class Callback:
    """Base class; every hook is a no-op. Subclass and override what you need."""

    def on_phase_begin(self, phase: str, epochs: int) -> None:
        """A phase (``models.phases``: ``pretrain``, ``init``, ``finetune``, or a method's own)
        starts, or resumes; ``epochs`` is its length."""

    def on_epoch_end(self, phase: str, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        """An epoch ended; ``logs`` holds ``loss`` and each loss term, averaged over the epoch,
        and the phase's own values (e.g. ``label_change``)."""

    def on_labels(self, phase: str, iteration: int, labels: np.ndarray, label_change: float | None) -> None:
        """A phase produced a label for every training sample (k-means init, a DEC target
        update, a head's argmax at an epoch's end); ``iteration`` is the step within the phase,
        ``label_change`` the fraction that changed since the phase's previous labels (None if
        it has none). The library never sees true labels: a receiver that has them scores here."""

    def on_k_selected(self, selection) -> None:
        """``n_clusters="auto"``: K was estimated after pretraining (a ``models.KSelection``:
        ``criterion``, ``chosen``, ``table``); training goes on at ``selection.chosen``."""

    def should_stop(self) -> bool:
        """Polled after every epoch (and after a phase without epochs); True makes ``fit`` raise
        ``TrainingCancelled``."""
        return False

    def on_checkpoint(self, state: dict) -> None:
        """A resumable point: ``state`` can be saved with ``save_checkpoint`` and passed back
        as ``fit(..., resume_from=state)``. Called after an epoch when ``checkpoint_due()``
        says so (by default after every epoch)."""

    def checkpoint_due(self) -> bool:
        """Polled after every epoch by a callback that overrides ``on_checkpoint``: True has the
        loop build a checkpoint (a host copy of the model, the optimiser and the phase's state)
        and hand it to ``on_checkpoint``. A receiver that persists every few minutes says False
        in between, so a GPU run does not copy the model to the host every epoch."""
        return True


class CallbackList(Callback):
    """Fans each hook out to several callbacks."""

    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks or ())
        # Building a checkpoint copies the model; skip it when nobody listens.
        self.wants_checkpoints = any(type(cb).on_checkpoint is not Callback.on_checkpoint for cb in self.callbacks)
        self._due: list[Callback] | None = None

    def on_phase_begin(self, phase, epochs):
        for cb in self.callbacks:
            cb.on_phase_begin(phase, epochs)

    def on_epoch_end(self, phase, epoch, epochs, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(phase, epoch, epochs, logs)

    def on_labels(self, phase, iteration, labels, label_change):
        for cb in self.callbacks:
            cb.on_labels(phase, iteration, labels, label_change)

    def on_k_selected(self, selection):
        for cb in self.callbacks:
            cb.on_k_selected(selection)

    def should_stop(self):
        return any(cb.should_stop() for cb in self.callbacks)

    def on_checkpoint(self, state):
        # To those that said it was due (all of them if nobody was asked).
        for cb in self.callbacks if self._due is None else self._due:
            cb.on_checkpoint(state)
        self._due = None

    def checkpoint_due(self) -> bool:
        """Whether any listener wants a checkpoint now; ``on_checkpoint`` goes to those that do."""
        self._due = [cb for cb in self.callbacks
                     if type(cb).on_checkpoint is not Callback.on_checkpoint and cb.checkpoint_due()]
        return bool(self._due)

    def raise_if_stopped(self) -> None:
        if self.should_stop():
            raise TrainingCancelled("training was cancelled by a callback")
