"""AE+DAC's clustering pieces (Yu et al. 2021; METHODS §5.2, §5.3), pure tensor functions.

The head's softmax outputs are the label features; L2-normalised, their dot products are the
cosine similarities s_ij of the batch's pairs. Pairs with ``s ≥ u(ξ)`` are taken as same-cluster,
pairs with ``s ≤ l(ξ)`` as different-cluster, the rest are left out (DAC's selection: both kinds
are selected, the paper's eq. 4 is a slip). The clustering loss is binary cross-entropy on the
selected pairs. ξ starts at 0 and grows once per epoch by gradient descent on ``u(ξ) − l(ξ)``
until ``u ≤ l``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..losses import reconstruction_loss

U0 = 0.95  # u(ξ) = 0.95 − ξ
L0 = 0.5  # l(ξ) = 0.5 + 0.1·ξ
L_SLOPE = 0.1
XI_LR = 0.005  # η, the learning rate of ξ
LOG_EPS = 1e-10  # s is clipped to [1e-10, 1] inside the logs (DAC-tensorflow)
PAIR_REDUCTIONS = ("all_pairs", "selected")
RECON_REDUCTIONS = ("mean", "paper")


def label_features(probs: Tensor) -> Tensor:
    """The head's softmax rows scaled to unit L2 norm."""
    return F.normalize(probs, p=2.0, dim=1)


def cosine_similarity_matrix(probs: Tensor) -> Tensor:
    """``s_ij = l̂_i · l̂_j`` (B×B) of the L2-normalised label features; in [0, 1] for softmax rows."""
    features = label_features(probs)
    return features @ features.T


@dataclass(frozen=True)
class Thresholds:
    """``u(ξ) = u0 − ξ``, ``l(ξ) = l0 + slope·ξ``, and the step of ξ per epoch.

    ξ ← ξ − η·∂(u − l)/∂ξ = ξ + (1 + slope)·η: with the paper's constants +0.0055 per epoch,
    so ``u ≤ l`` from ξ ≥ 0.45/1.1, after 75 epochs. DAC's own constants are l0 = 0.455 and
    η = 0.009 (46 epochs).
    """

    u0: float = U0
    l0: float = L0
    slope: float = L_SLOPE
    eta: float = XI_LR

    def upper(self, xi: float) -> float:
        return self.u0 - xi

    def lower(self, xi: float) -> float:
        return self.l0 + self.slope * xi

    def xi_after(self, epochs: int) -> float:
        """ξ after ``epochs`` epochs from ξ₀ = 0 (a product, not a running sum: exact on resume)."""
        return epochs * (1.0 + self.slope) * self.eta

    def done(self, xi: float) -> bool:
        """Training ends once the thresholds meet: ``u(ξ) ≤ l(ξ)``."""
        return self.upper(xi) <= self.lower(xi)

    def epochs_to_stop(self, cap: int = 1_000_000) -> int:
        """The number of epochs after which ``done`` holds (``cap`` if it never does by then)."""
        for epoch in range(cap + 1):
            if self.done(self.xi_after(epoch)):
                return epoch
        return cap


@torch.no_grad()
def select_pairs(similarity: Tensor, upper: float, lower: float) -> tuple[Tensor, Tensor]:
    """Boolean masks of the positive (``s ≥ u``) and negative (``s ≤ l``) pairs; no gradient."""
    return similarity >= upper, similarity <= lower


def pairwise_clustering_loss(similarity: Tensor, positive: Tensor, negative: Tensor,
                             reduction: str = "all_pairs") -> Tensor:
    """``L_c``: binary cross-entropy of the selected pairs' similarities.

    ``"all_pairs"`` (DAC-tensorflow, the default): ``mean(pos·(−log s)) + mean(neg·(−log(1−s)))``
    with both means over all B² pairs. ``"selected"``: the summed terms over the number of
    selected pairs.
    """
    if reduction not in PAIR_REDUCTIONS:
        raise ValueError(f"unknown pair reduction {reduction!r}; use one of {PAIR_REDUCTIONS}")
    pos_term = -similarity.clamp(LOG_EPS, 1.0).log() * positive
    neg_term = -(1.0 - similarity).clamp(LOG_EPS, 1.0).log() * negative
    if reduction == "all_pairs":
        return pos_term.mean() + neg_term.mean()
    selected = (positive.sum() + negative.sum()).clamp_min(1)
    return (pos_term.sum() + neg_term.sum()) / selected


def dac_reconstruction_loss(x_hat: Tensor, x: Tensor, reduction: str = "mean") -> Tensor:
    """``L_r``: ``"mean"`` over all elements (Keras mse, the default), or ``"paper"``:
    ``(1/2n)·Σ‖x − x̂‖²``, half the per-sample squared error averaged over the batch."""
    if reduction == "mean":
        return reconstruction_loss(x_hat, x, "mean")
    if reduction == "paper":
        return 0.5 * reconstruction_loss(x_hat, x, "sample_sum")
    raise ValueError(f"unknown reconstruction reduction {reduction!r}; use one of {RECON_REDUCTIONS}")


def dac_batch_loss(probs: Tensor, x_hat: Tensor, x: Tensor, xi: float, *, alpha: float = 0.5,
                   beta: float = 0.3, thresholds: Thresholds = Thresholds(),
                   pair_reduction: str = "all_pairs", recon_reduction: str = "mean") -> dict[str, Tensor]:
    """``α·L_r + β·L_c`` of one batch, with its terms and the share of pairs selected."""
    similarity = cosine_similarity_matrix(probs)
    positive, negative = select_pairs(similarity, thresholds.upper(xi), thresholds.lower(xi))
    clustering = pairwise_clustering_loss(similarity, positive, negative, pair_reduction)
    reconstruction = dac_reconstruction_loss(x_hat, x, recon_reduction)
    n_pairs = similarity.numel()
    return {
        "loss": alpha * reconstruction + beta * clustering,
        "reconstruction": reconstruction,
        "clustering": clustering,
        "positive_pairs": positive.sum() / n_pairs,
        "negative_pairs": negative.sum() / n_pairs,
    }
