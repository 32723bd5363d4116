"""The clustering (fine-tuning) phase of DEC and its descendants (Xie et al. 2016; docs/methods.md#dec).

Every ``update_interval`` iterations the soft assignments of the full data give a new target
(a constant for the steps in between); training stops when fewer than ``tol`` of the labels
changed between two updates, or after ``maxiter`` iterations. Each method supplies its own
per-batch loss; the schedule lives here once.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..losses import target_distribution
from ..phases import FINETUNE
from .data import ArrayData
from .phase import Batch, Phase, Transform

# loss(model, x, target_rows) -> {"loss": ..., <terms>}
BatchLoss = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


@torch.no_grad()
def predict_soft(model, data: ArrayData) -> torch.Tensor:
    """Soft assignments of all samples, in order, in eval mode."""
    model.eval()
    return torch.cat([model.soft_assign(model.embed(x)) for x in data.chunks()])


class TargetPhase(Phase):
    """DEC's self-training against a full-data target distribution, recomputed every
    ``update_interval`` iterations (before the step); ``tol=None`` runs all ``maxiter``."""

    name = FINETUNE

    def __init__(self, loss: BatchLoss, optimizer: Callable[[torch.nn.Module], torch.optim.Optimizer], *,
                 maxiter: int, update_interval: int, batch_size: int, tol: float | None = 0.001,
                 order: str = "sequential", target_fn: Callable = target_distribution,
                 transform: Transform | None = None):
        self.loss, self.make_optimizer, self.target_fn = loss, optimizer, target_fn
        self.maxiter, self.update_interval, self.tol = maxiter, update_interval, tol
        self.batch_size, self.order, self.transform = batch_size, order, transform
        self.target: torch.Tensor | None = None
        self.labels: np.ndarray | None = None
        self.label_change: float | None = None

    def iterations(self, n_samples):
        return self.maxiter

    def optimizer(self, model):
        return self.make_optimizer(model)

    def begin(self, model, data, run):
        self.labels = run.last_labels  # k-means': the first label change is measured against them

    def before_step(self, model, data, iteration, run):
        if iteration % self.update_interval:
            return False
        q = predict_soft(model, data)
        self.target = self.target_fn(q)
        labels = q.argmax(1).cpu().numpy()
        self.label_change = float(np.mean(labels != self.labels))
        self.labels = labels
        run.report_labels(self.name, iteration, labels, self.label_change)
        return iteration > 0 and self.tol is not None and self.label_change < self.tol

    def step(self, model, batch: Batch):
        return self.loss(model, batch.x, self.target[batch.index.to(self.target.device)])

    def epoch_logs(self):
        return {} if self.label_change is None else {"label_change": self.label_change}

    def state_dict(self):
        return {"target": self.target, "labels": torch.as_tensor(self.labels), "label_change": self.label_change}

    def load_state_dict(self, state):
        self.target = state["target"]
        self.labels = state["labels"].cpu().numpy()
        self.label_change = state["label_change"]
