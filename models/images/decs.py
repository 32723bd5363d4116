"""DECS' clustering loss pieces (Cheng et al., IJCAI 2024; METHODS §3.3, §3.4), pure tensor functions.

Per mini-batch: an Otsu threshold t on the batch's soft assignments q (B×K), the determinacy
``fq`` of every sample-centre pair, each sample's stability ``sq`` and the loss built from it.

Two variants. ``"code"`` (default) is the authors' code, which produced the paper's table:
``fq = |q−t|/t`` below t and ``|q−t|/(1−t)`` above, ``sq = mean(fq) − 0.4·var(fq)``,
``L = 1 − (mean(sq) + var(sq))``, Student-t α = 0.5, 20,000 iterations. ``"paper"`` is the text:
squared determinacy (eq. 6), λ = 0.8 (eq. 7), ``L = 1 − mean(sq)`` (eq. 8), α = 1, 10,000
iterations. Variances are population variances, as ``tf.math.reduce_variance``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

OTSU_BINS = 1000
T_GUARD = 1e-3  # keeps t off 0 and 1, where the determinacy divides by zero (METHODS §3.3)


@dataclass(frozen=True)
class DECSVariant:
    """The settings that differ between the authors' code and the paper (METHODS §3.5)."""

    name: str
    lam: float  # weight of the variance of fq in the stability
    alpha: float  # Student-t degree of freedom of the soft assignment
    maxiter: int  # clustering iterations
    squared: bool  # determinacy squared (paper) or absolute (code)
    variance_term: bool  # the code's extra ``+ var(sq)`` in the loss


VARIANTS = {
    "code": DECSVariant("code", lam=0.4, alpha=0.5, maxiter=20_000, squared=False, variance_term=True),
    "paper": DECSVariant("paper", lam=0.8, alpha=1.0, maxiter=10_000, squared=True, variance_term=False),
}


def _variant(name: str) -> DECSVariant:
    if name not in VARIANTS:
        raise ValueError(f"unknown DECS variant {name!r}; use one of {sorted(VARIANTS)}")
    return VARIANTS[name]


@torch.no_grad()
def otsu_threshold(q: Tensor, bins: int = OTSU_BINS) -> Tensor:
    """Otsu's threshold of all the values in ``q`` (expected in [0, 1]), as the DECS code has it.

    A ``bins``-bin histogram on [0, 1] (a value v falls in bin ``floor(bins·v)``, 1.0 in the last,
    like ``tf.histogram_fixed_width``) with bin probabilities p_k; ``ω_k = Σ_{i≤k} p_i``,
    ``μ_k = Σ_{i≤k} i·p_i`` with intensities the bin *indices*, ``μ_T = μ_{bins−1}``.
    ``t = argmax_k (μ_T ω_k − μ_k)² / (ω_k(1 − ω_k) + 1e-6) / bins``: the lower edge of the best
    bin, the first one on ties. Computed in float64 (the code used float32) and returned as a
    0-d tensor of q's dtype on q's device, with no gradient: t is a constant for the step.
    """
    values = q.detach().flatten()
    index = torch.floor(values.to(torch.float64) * bins).long().clamp_(0, bins - 1)
    p = torch.bincount(index, minlength=bins).to(torch.float64) / values.numel()
    omega = torch.cumsum(p, 0)
    mu = torch.cumsum(torch.arange(bins, dtype=torch.float64, device=p.device) * p, 0)
    between = (mu[-1] * omega - mu).pow(2) / (omega * (1.0 - omega) + 1e-6)
    return (torch.argmax(between).to(torch.float64) / bins).to(q.dtype)


def determinacy(q: Tensor, t: Tensor | float, variant: str = "code") -> Tensor:
    """How surely each q_ij sits away from the threshold t: 0 at q = t, 1 at q = 0 or q = 1.

    ``"code"``: ``|q−t|/t`` below t, ``|q−t|/(1−t)`` from t up. ``"paper"`` (eq. 6): the squares.
    ``t`` is clamped to [1e-3, 1 − 1e-3].
    """
    v = _variant(variant)
    t = torch.as_tensor(t, dtype=q.dtype, device=q.device).clamp(T_GUARD, 1.0 - T_GUARD)
    offset = (q - t).abs()
    scaled = torch.where(q < t, offset / t, offset / (1.0 - t))
    return scaled.pow(2) if v.squared else scaled


def stability(fq: Tensor, lam: float) -> Tensor:
    """Each sample's stability ``sq_i = mean_j fq_ij − λ·var_j fq_ij`` (eq. 7; population variance)."""
    return fq.mean(dim=1) - lam * fq.var(dim=1, unbiased=False)


def stability_loss(q: Tensor, t: Tensor | float, variant: str = "code", lam: float | None = None) -> Tensor:
    """DECS' clustering loss of one batch of soft assignments ``q`` (B×K) at threshold ``t``.

    ``"code"``: ``1 − (mean(sq) + var(sq))``; ``"paper"`` (eq. 8): ``1 − mean(sq)``. ``lam``
    overrides the variant's λ (0.4 in the code, 0.8 in the paper).
    """
    v = _variant(variant)
    sq = stability(determinacy(q, t, variant), v.lam if lam is None else lam)
    loss = 1.0 - sq.mean()
    if v.variance_term:
        loss = loss - sq.var(unbiased=False)
    return loss
