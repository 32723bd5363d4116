"""Optimisers named the way the reference code names them."""
from __future__ import annotations

import torch

OPTIMIZERS = ("adam", "sgd")


def make_optimizer(parameters, name: str, lr: float, momentum: float = 0.0) -> torch.optim.Optimizer:
    """``adam`` (Keras ``Adam()`` = lr 1e-3) or ``sgd`` with momentum (Keras ``SGD(lr, momentum)``)."""
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}; use one of {OPTIMIZERS}")
