"""Autoencoder pretraining, shared by every deep method."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..data import ArrayData
from ..losses import reconstruction_loss
from .run import Run, accumulate

LossFn = Callable[[nn.Module, torch.Tensor], dict[str, torch.Tensor]]


def reconstruction_objective(autoencoder: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Plain pretraining: mean squared reconstruction error (Keras ``mse``)."""
    _, x_hat = autoencoder(x)
    rec = reconstruction_loss(x_hat, x.reshape(x_hat.shape))
    return {"loss": rec, "reconstruction": rec}


def pretrain_autoencoder(autoencoder: nn.Module, data: ArrayData, optimizer: torch.optim.Optimizer, *,
                         epochs: int, batch_size: int, seed: int, run: Run,
                         objective: LossFn = reconstruction_objective, start_epoch: int = 0) -> None:
    """Train ``autoencoder`` on ``objective`` for ``epochs`` shuffled passes.

    After every epoch the history gets a row and the callbacks get a checkpoint; training can be
    resumed at ``start_epoch`` with the model and optimiser state of that checkpoint.
    """
    run.callbacks.on_phase_begin("pretrain", epochs)
    n = len(data)
    for epoch in range(start_epoch, epochs):
        autoencoder.train()
        order = data.order(epoch, seed, "shuffle")
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, n, batch_size):
            x = data.rows(order[start:start + batch_size])
            terms = objective(autoencoder, x)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            accumulate(sums, terms, len(x))
        run.end_epoch("pretrain", epoch, epochs, sums, n)
        run.checkpoint(phase="pretrain", epoch=epoch + 1,
                       model=autoencoder.state_dict(), optimizer=optimizer.state_dict())
        run.callbacks.raise_if_stopped()

