"""Autoencoder pretraining as a phase, shared by every deep method."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..losses import reconstruction_loss
from ..phases import PRETRAIN
from .phase import Batch, Phase, Transform

Objective = Callable[[nn.Module, torch.Tensor], dict[str, torch.Tensor]]
OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]


def reconstruction_objective(autoencoder: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Plain pretraining: mean squared reconstruction error (Keras ``mse``)."""
    _, x_hat = autoencoder(x)
    rec = reconstruction_loss(x_hat, x.reshape(x_hat.shape))
    return {"loss": rec, "reconstruction": rec}


class PretrainPhase(Phase):
    """``epochs`` shuffled passes of ``objective(model.autoencoder, x)``.

    ``optimizer`` builds the optimiser from the autoencoder. At the end the autoencoder's
    weights are kept (``run.base_state["pretrained"]``): they go into every later checkpoint and
    the fitted model, so another run can reuse them (``fit(pretrained=...)``).
    """

    name = PRETRAIN

    def __init__(self, objective: Objective, optimizer: OptimizerFactory, *, epochs: int, batch_size: int,
                 order: str = "shuffle", drop_last: bool = False, transform: Transform | None = None):
        self.objective, self.make_optimizer, self.n_epochs = objective, optimizer, epochs
        self.batch_size, self.order, self.drop_last, self.transform = batch_size, order, drop_last, transform

    def iterations(self, n_samples):
        return self.n_epochs * self.iterations_per_epoch(n_samples)

    def optimizer(self, model):
        return self.make_optimizer(model.autoencoder)

    def step(self, model, batch: Batch):
        return self.objective(model.autoencoder, batch.x)

    def end(self, model, data, run):
        run.base_state["pretrained"] = {k: v.detach().cpu().clone()
                                        for k, v in model.autoencoder.state_dict().items()}
