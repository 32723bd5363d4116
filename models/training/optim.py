"""Optimisers named the way the reference code names them."""
from __future__ import annotations

import torch

from .accel import adam_options

OPTIMIZERS = ("adam", "sgd")


def make_optimizer(parameters, name: str, lr: float, momentum: float = 0.0) -> torch.optim.Optimizer:
    """``adam`` (Keras ``Adam()`` = lr 1e-3) or ``sgd`` with momentum (Keras ``SGD(lr, momentum)``).
    Adam's implementation on a GPU is a speed setting (``models.training.accel``: fused by
    default there); on the CPU it is torch's default."""
    if name == "adam":
        parameters = list(parameters)
        return torch.optim.Adam(parameters, lr=lr, **adam_options(parameters))
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}; use one of {OPTIMIZERS}")
