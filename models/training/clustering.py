"""The clustering (fine-tuning) loop of DEC and its descendants (METHODS §6.1).

Every ``update_interval`` iterations the soft assignments of the full data give a new target
(a constant for the steps in between); training stops when fewer than ``tol`` of the labels
changed between two updates, or after ``maxiter`` iterations. Each method supplies its own
per-batch loss; the schedule and bookkeeping live here once.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..data import ArrayData
from ..losses import target_distribution
from ..networks import ClusterModel
from .run import Run, accumulate

BatchLoss = Callable[[ClusterModel, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class ClusteringSchedule:
    maxiter: int
    update_interval: int
    batch_size: int
    tol: float | None = 0.001  # None: run all maxiter iterations (CDC)
    order: str = "sequential"  # see models.data.batch_order

    def iterations_per_epoch(self, n_samples: int) -> int:
        return math.ceil(n_samples / self.batch_size)

    def epochs(self, n_samples: int) -> int:
        return math.ceil(self.maxiter / self.iterations_per_epoch(n_samples))


@torch.no_grad()
def predict_soft(model: ClusterModel, data: ArrayData) -> torch.Tensor:
    """Soft assignments of all samples, in order, in eval mode."""
    model.eval()
    return torch.cat([model(x) for x in data.chunks()])


def run_clustering(model: ClusterModel, data: ArrayData, optimizer: torch.optim.Optimizer,
                   batch_loss: BatchLoss, schedule: ClusteringSchedule, *, seed: int, run: Run,
                   initial_labels: np.ndarray, target_fn: Callable = target_distribution,
                   resume: dict | None = None) -> None:
    """Fine-tune ``model`` on ``batch_loss(model, x, target_rows)`` under ``schedule``.

    ``resume`` is a ``phase="finetune"`` checkpoint: iteration, target and last labels are
    restored from it, so the run continues exactly where it stopped.
    """
    n = len(data)
    ipe = schedule.iterations_per_epoch(n)
    epochs = schedule.epochs(n)
    run.callbacks.on_phase_begin("finetune", epochs)
    if resume is not None:
        iteration = int(resume["iteration"])
        target = resume["target"].to(data.device)
        last_labels = resume["labels"].numpy()
        label_change = resume["label_change"]
    else:
        iteration, target, last_labels, label_change = 0, None, initial_labels, None

    sums: dict[str, torch.Tensor] = {}
    seen, order = 0, None
    while iteration < schedule.maxiter:
        if iteration % schedule.update_interval == 0:
            q = predict_soft(model, data)
            target = target_fn(q)
            labels = q.argmax(1).cpu().numpy()
            label_change = float(np.mean(labels != last_labels))
            last_labels = labels
            run.callbacks.on_target_update(iteration, labels, label_change)
            if iteration > 0 and schedule.tol is not None and label_change < schedule.tol:
                break
        epoch, position = divmod(iteration, ipe)
        if position == 0 or order is None:
            order = data.order(epoch, seed, schedule.order)
        index = order[position * schedule.batch_size:(position + 1) * schedule.batch_size]
        model.train()
        terms = batch_loss(model, data.rows(index), target[index.to(target.device)])
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        accumulate(sums, terms, len(index))
        seen += len(index)
        iteration += 1
        if iteration % ipe == 0 or iteration == schedule.maxiter:
            extra = {} if label_change is None else {"label_change": label_change}
            run.end_epoch("finetune", epoch, epochs, sums, seen, extra)
            sums, seen = {}, 0
            run.checkpoint(phase="finetune", iteration=iteration, model=model.state_dict(),
                           optimizer=optimizer.state_dict(), target=target,
                           labels=torch.as_tensor(last_labels), label_change=label_change)
            run.callbacks.raise_if_stopped()
    if seen:  # stopped on tolerance mid-epoch: keep the partial epoch's losses
        run.end_epoch("finetune", iteration // ipe, epochs, sums, seen, {"label_change": label_change})
