"""DCCF's unsupervised focal loss: soft assignments S scored against the self-training target T
(METHODS §4.2; Lin et al.'s ``FL(p_t) = -(1 - p_t)^γ log p_t`` with T in place of the labels).

- ``"hard"`` (default, the most literal reading of eq. 11 with a one-hot y_true): the pseudo-label
  is ``c_i = argmax_j t_ij`` and ``p_t = s_{i,c_i}``.
- ``"soft"``: ``p_t = Σ_j s_ij t_ij``.
- ``"categorical"``: the Keras categorical focal loss ``Σ_j -t_ij (1 - s_ij)^γ log s_ij``.

Each is averaged over the batch; T is a constant (no gradient reaches it).
"""
from __future__ import annotations

import torch

from .losses import KERAS_EPS

FOCAL_KINDS = ("hard", "soft", "categorical")


def focal_loss(s: torch.Tensor, t: torch.Tensor, gamma: float = 2.0, kind: str = "hard") -> torch.Tensor:
    t = t.detach()
    if kind == "categorical":
        s = s.clamp(KERAS_EPS, 1.0)
        return (-t * (1.0 - s).pow(gamma) * s.log()).sum(1).mean()
    if kind == "hard":
        p_t = s.gather(1, t.argmax(1, keepdim=True)).squeeze(1)
    elif kind == "soft":
        p_t = (s * t).sum(1)
    else:
        raise ValueError(f"unknown focal loss {kind!r}; use one of {FOCAL_KINDS}")
    p_t = p_t.clamp(KERAS_EPS, 1.0)
    return (-(1.0 - p_t).pow(gamma) * p_t.log()).mean()
