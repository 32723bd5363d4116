"""What a phase of training supplies to the loop (``models.training.loop.train``).

A phase is the part of a method that is its own: its name and batches, its length, its
optimiser, its per-batch loss, its hooks and its state. Everything else (batch order, the
per-step transform, the optimiser step, loss sums and history rows, checkpoints, cancel and
resume) is the loop's, once for every method. Modelled on skorch's ``train_step`` and
Lightning's ``Callback.state_dict``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch

if TYPE_CHECKING:
    from .data import ArrayData
    from .run import Run

# transform(x, generator) -> x: applied to training batches only; ``generator`` (on x's device)
# is seeded afresh from (seed, phase name, iteration) before every step, so a resumed run draws
# exactly the augmentations an uninterrupted one would have. Draw from it, never from the
# global RNG.
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Batch(NamedTuple):
    x: torch.Tensor  # the scaled (and, if the phase has a transform, transformed) rows
    index: torch.Tensor  # their positions in the training data, on the data's index device
    # ``second_view(x, generator)`` of the same rows when the phase declares one (a two-view
    # phase: e.g. pair labels from the clean ``x``, the loss on this augmented copy); else None
    view: torch.Tensor | None = None


class Phase:
    """One stage of training. Subclass it and override what is yours; every hook has a default.

    Class attributes (or instance attributes set in ``__init__``) configure the batches:
    ``batch_size``; ``order``: ``"sequential"``, ``"shuffle"`` or ``"sequential_then_shuffle"``
    (see ``models.training.data.batch_order``); ``drop_last``: skip the short last batch of a pass (a
    pass always has at least one batch); ``transform``: a training-only ``Transform`` or None;
    ``second_view``: a ``Transform`` whose output the step gets beside the batch, as
    ``batch.view`` (``batch.x`` stays the clean rows), drawn from the same per-step generator
    after ``transform``, so it too is exact under resume.
    """

    name: str = ""
    batch_size: int = 256
    order: str = "shuffle"
    drop_last: bool = False
    transform: Transform | None = None
    second_view: Transform | None = None

    # -- shape --------------------------------------------------------------------------------------
    def iterations(self, n_samples: int) -> int:
        """Length in optimiser steps; 0 for a phase without steps (k-means init)."""
        return 0

    def iterations_per_epoch(self, n_samples: int) -> int:
        if self.drop_last:
            return max(1, n_samples // self.batch_size)
        return math.ceil(n_samples / self.batch_size)

    def epochs(self, n_samples: int) -> int:
        """What ``Callback.on_phase_begin`` announces; a step-less phase counts as one epoch."""
        total = self.iterations(n_samples)
        return math.ceil(total / self.iterations_per_epoch(n_samples)) if total else 1

    # -- training -----------------------------------------------------------------------------------
    def optimizer(self, model) -> torch.optim.Optimizer | None:
        """A fresh optimiser over the parameters this phase moves (None without steps)."""
        return None

    def step(self, model, batch: Batch) -> dict[str, torch.Tensor]:
        """The loss terms of one batch; ``"loss"`` is the one minimised. Called in train mode."""
        raise NotImplementedError(f"phase {self.name!r} has no step")

    # -- hooks (``run`` reports labels: ``run.report_labels``; ``run.last_labels`` are the latest) --
    def begin(self, model, data: ArrayData, run: Run) -> None:
        """The phase starts afresh (not called when resuming inside it): k-means, initial state."""

    def before_step(self, model, data: ArrayData, iteration: int, run: Run) -> bool:
        """Before step ``iteration`` (0-based, within the phase); True ends the phase here."""
        return False

    def end_epoch(self, model, data: ArrayData, epoch: int, run: Run) -> bool:
        """After the last step of an epoch, before its history row; True ends the phase."""
        return False

    def epoch_logs(self) -> dict[str, float]:
        """Extra values for the epoch's history row (e.g. ``label_change``). A phase without
        steps gets one row (epoch 0) if this returns anything."""
        return {}

    def end(self, model, data: ArrayData, run: Run) -> None:
        """The phase is over (its steps ran out or a hook ended it); not called on cancel."""

    # -- state carried by every checkpoint ------------------------------------------------------
    def state_dict(self) -> dict:
        """Tensors and plain values only (checkpoints load with ``weights_only=True``)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``; its tensors arrive on the training device."""
