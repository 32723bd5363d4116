"""CDC's pairwise Student-t "correlation" distributions over a mini-batch and the KL losses on
them (METHODS §2.2, §2.3, §2.6).

Two normalisations are offered:

- ``"row"`` (the authors' code, the default): every row of the B×B kernel matrix, diagonal
  included, is normalised into a distribution over the batch, then clipped to [1e-10, 1];
  losses compare rows with Keras ``kld`` (clip to [1e-7, 1], sum over the row, mean over rows).
- ``"global"`` (the paper's eq. 5): one joint distribution over the ordered pairs k≠l, diagonal
  excluded; losses are the plain KL sum over the off-diagonal pairs.
"""
from __future__ import annotations

import torch

from .losses import kl_divergence, student_t_kernel, target_distribution

PAIR_CLIP = 1e-10
NORMS = ("row", "global")


def pairwise_sq_dist(a: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of ``a`` (B×p), exactly 0 on the diagonal."""
    a = a.flatten(1)
    sq = a.pow(2).sum(1)
    dist = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * a @ a.T).clamp_min(0.0)
    return dist * _off_diagonal(len(a), dist)


def pairwise_t(a: torch.Tensor, alpha: float = 1.0, norm: str = "row") -> torch.Tensor:
    """C(A): the Student-t kernel of the pairwise distances of the rows of ``a``, normalised.

    ``"row"``: each row sums to 1 over all B members, itself included, then clipped to
    [1e-10, 1] (code). ``"global"``: zero diagonal, all off-diagonal entries sum to 1 (eq. 5).
    """
    kernel = student_t_kernel(pairwise_sq_dist(a), alpha)
    if norm == "row":
        return (kernel / kernel.sum(1, keepdim=True)).clamp(PAIR_CLIP, 1.0)
    if norm == "global":
        return _joint(kernel * _off_diagonal(len(a), kernel))
    raise ValueError(f"unknown pairwise normalisation {norm!r}; use one of {NORMS}")


def sharpen_pairs(c: torch.Tensor, norm: str = "row") -> torch.Tensor:
    """DEC's target sharpening applied to a pairwise matrix (METHODS §2.3), not detached.

    ``"row"``: square, divide by column sums, normalise rows. ``"global"``: the same on the
    zero-diagonal matrix, then renormalised into a joint distribution over the pairs k≠l.
    """
    if norm == "global" and len(c) < 2:
        return c  # no pairs to sharpen
    sharp = target_distribution(c)
    return sharp if norm == "row" else _joint(sharp * _off_diagonal(len(c), sharp))


def pair_kl(p: torch.Tensor, r: torch.Tensor, norm: str = "row") -> torch.Tensor:
    """KL(P‖R) of two pairwise matrices: rows as Keras ``kld`` (row), or the joint KL over k≠l (global)."""
    if norm == "row":
        return kl_divergence(p, r, "batchmean")
    if norm == "global":
        # Clamped logs keep the gradient finite on the zero diagonal, which the mask then drops.
        pointwise = p * (p.clamp_min(PAIR_CLIP).log() - r.clamp_min(PAIR_CLIP).log())
        return (pointwise * _off_diagonal(len(p), p)).sum()
    raise ValueError(f"unknown pairwise normalisation {norm!r}; use one of {NORMS}")


def correlation_loss(c_z_target: torch.Tensor, other: torch.Tensor, alpha: float = 1.0,
                     norm: str = "row") -> torch.Tensor:
    """L_cr(Z, ·) = KL(C_Z target ‖ C(other)); ``c_z_target`` comes from ``embedding_target``."""
    return pair_kl(c_z_target, pairwise_t(other, alpha, norm), norm)


def embedding_target(z: torch.Tensor, alpha: float = 1.0, norm: str = "row", sharpen: bool = True) -> torch.Tensor:
    """The first argument of L_cr: sharpen(C(Z)) in the code, plain C(Z) in the paper's eq. 6."""
    c_z = pairwise_t(z, alpha, norm)
    return sharpen_pairs(c_z, norm) if sharpen else c_z


def affinity_loss(q: torch.Tensor, z: torch.Tensor, alpha: float = 1.0, norm: str = "row") -> torch.Tensor:
    """L_a = KL(sharpen(C(Q)) ‖ C(Z)): the pairwise structure of the soft assignments, sharpened
    like DEC's P, taught to the embedding. Nothing is detached (code, METHODS §2.3)."""
    return pair_kl(sharpen_pairs(pairwise_t(q, alpha, norm), norm), pairwise_t(z, alpha, norm), norm)


def _off_diagonal(n: int, like: torch.Tensor) -> torch.Tensor:
    return 1.0 - torch.eye(n, dtype=like.dtype, device=like.device)


def _joint(m: torch.Tensor) -> torch.Tensor:
    # A batch of one has no pairs; its (all-zero) matrix stays zero and every KL on it is 0.
    return m / m.sum().clamp_min(torch.finfo(m.dtype).tiny)
