"""Loss functions and the building blocks they share (docs/methods.md#conventions)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

KERAS_EPS = 1e-7


def student_t_kernel(sq_dist: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Unnormalised Student-t kernel ``(1 + d²/α)^(-(α+1)/2)`` of squared distances."""
    return (1.0 + sq_dist / alpha).pow(-(alpha + 1.0) / 2.0)


def soft_assign(z: torch.Tensor, centers: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """DEC's soft assignment q_ij of embeddings ``z`` (B×d) to ``centers`` (K×d)."""
    sq_dist = (z.unsqueeze(1) - centers.unsqueeze(0)).pow(2).sum(-1)
    kernel = student_t_kernel(sq_dist, alpha)
    return kernel / kernel.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's sharpened target P: square, divide by the column sums, normalise the rows."""
    weight = q.pow(2) / q.sum(dim=0, keepdim=True)
    return weight / weight.sum(dim=1, keepdim=True)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, reduction: str = "batchmean") -> torch.Tensor:
    """KL(P‖Q) of row distributions.

    ``"batchmean"`` is Keras ``kld``: both arguments clipped to [1e-7, 1], summed over the
    last axis, averaged over rows (DEC-keras, IDEC-keras). ``"mean"`` is PyTorch's
    ``F.kl_div(q.log(), p)`` averaged over all B·K elements (IDEC-pytorch lineage). ``"sum"``
    sums everything.
    """
    if reduction == "batchmean":
        p_c = p.clamp(KERAS_EPS, 1.0)
        q_c = q.clamp(KERAS_EPS, 1.0)
        return (p_c * (p_c.log() - q_c.log())).sum(dim=-1).mean()
    if reduction in ("mean", "sum"):
        # F.kl_div's elementwise term, written out: its "mean" is slated to change meaning.
        pointwise = torch.special.xlogy(p, p) - p * q.clamp_min(1e-12).log()
        return pointwise.mean() if reduction == "mean" else pointwise.sum()
    raise ValueError(f"unknown KL reduction {reduction!r}; use 'batchmean', 'mean' or 'sum'")


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared reconstruction error.

    ``"mean"`` averages over all elements (Keras ``mse``, ``F.mse_loss``); ``"sample_sum"``
    sums over features and averages over the batch (ClustPy, the papers' ‖x−x'‖²).
    """
    if reduction == "mean":
        return F.mse_loss(x_hat, x)
    if reduction == "sample_sum":
        return (x_hat - x).pow(2).flatten(1).sum(dim=1).mean()
    raise ValueError(f"unknown reconstruction reduction {reduction!r}; use 'mean' or 'sample_sum'")
