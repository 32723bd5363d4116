"""CDC (Trinh & Pham): correlation losses for deep clustering (docs/methods.md#cdc).

Defaults follow the authors' code (``fict-labs/Deep-Clustering-CDC``), which produced the
published numbers: row-normalised pairwise distributions with the diagonal kept, the C(Z) side
of every correlation loss sharpened, nothing detached but the full-data DEC target, no
reconstruction in fine-tuning, and the code's schedule for a dataset it has no branch for
(Adam pretraining for 30 epochs, batch 64; SGD(0.01, 0.9) for T = 5000 iterations, target every
h = 50, no tolerance stop). ``variant="paper"`` is the paper's version (docs/methods.md#cdc): eq. 5's global
normalisation over k≠l, plain KL(C_Z‖C_X), and Algorithm 1's split updates (μ on L_c + ηL_a,
decoder on L_AE, encoder on L_DC).
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch.func import functional_call

from ..losses import kl_divergence, reconstruction_loss, student_t_kernel, target_distribution
from . import register
from .dec import DEC, DECParams

VARIANTS = ("code", "paper")

# -- the pairwise losses -----------------------------------------------------------------------
# CDC's pairwise Student-t "correlation" distributions over a mini-batch and the KL losses on
# them (Trinh & Pham, eq. 5, 6 and 11; docs/methods.md#cdc).
#
# Two normalisations are offered:
#
# - ``"row"`` (the authors' code, the default): every row of the B×B kernel matrix, diagonal
#   included, is normalised into a distribution over the batch, then clipped to [1e-10, 1];
#   losses compare rows with Keras ``kld`` (clip to [1e-7, 1], sum over the row, mean over rows).
# - ``"global"`` (the paper's eq. 5): one joint distribution over the ordered pairs k≠l, diagonal
#   excluded; losses are the plain KL sum over the off-diagonal pairs.

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
    """DEC's target sharpening applied to a pairwise matrix (docs/methods.md#cdc), not detached.

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
    like DEC's P, taught to the embedding. Nothing is detached (code, docs/methods.md#cdc)."""
    return pair_kl(sharpen_pairs(pairwise_t(q, alpha, norm), norm), pairwise_t(z, alpha, norm), norm)


def _off_diagonal(n: int, like: torch.Tensor) -> torch.Tensor:
    return 1.0 - torch.eye(n, dtype=like.dtype, device=like.device)


def _joint(m: torch.Tensor) -> torch.Tensor:
    # A batch of one has no pairs; its (all-zero) matrix stays zero and every KL on it is 0.
    return m / m.sum().clamp_min(torch.finfo(m.dtype).tiny)


# -- the method --------------------------------------------------------------------------------
class CDCParams(DECParams):
    variant: Literal[VARIANTS] = Field(
        "code", description="'code': the authors' code (row-normalised, sharpened C_Z, no fine-tune "
                            "reconstruction); 'paper': eq. 5 global normalisation, plain KL, Algorithm 1 updates.")
    pretrain_epochs: int = Field(30, ge=0, le=10_000, description="Autoencoder pretraining epochs (code: 30).")
    pretrain_batch_size: int = Field(64, ge=1, le=65_536)
    pretrain_corr_weight: float = Field(
        1e-3, ge=0, le=1000, description="λ: weight of L_cr(Z,X) + L_cr(Z,X') in pretraining (1e-6 for CIFAR-10).")
    corr_weight: float = Field(1e-3, ge=0, le=1000, description="β: weight of L_re = L_cr(Z,X) + L_cr(Z,X') in fine-tuning.")
    affinity_weight: float = Field(0.75, ge=0, le=1000, description="η: weight of the affinity loss L_a.")
    maxiter: int = Field(5000, ge=1, le=10_000_000, description="T: fine-tuning iterations, always all of them.")
    update_interval: int = Field(50, ge=1, description="h: iterations between full-data target updates.")
    tol: float | None = Field(None, ge=0, le=1, description="Optional label-change stop; the code has none.")
    batch_size: int = Field(64, ge=1, le=65_536)


@register
class CDC(DEC):
    name = "cdc"
    summary = ("CDC: autoencoder pretrained with pairwise Student-t correlation losses, fine-tuned on "
               "DEC's KL plus an affinity loss and correlation regularisers.")
    params_model = CDCParams
    tiny_preset = {**DEC.tiny_preset}
    # The code's order: data order first, reshuffled each time the index wraps; the last short
    # batch is used.
    batch_order = "sequential_then_shuffle"
    static_step = False  # not captured (the paper variant calls the decoder functionally)

    @property
    def norm(self) -> str:
        return "row" if self.params.variant == "code" else "global"

    def finetune_parameters(self, model):
        return list(model.parameters())

    def correlation_terms(self, z, x, x_hat) -> dict[str, torch.Tensor]:
        """L_cr(Z,X) and L_cr(Z,X'), sharing the C_Z side (sharpened in the code variant)."""
        target = embedding_target(z, self.params.alpha, self.norm, sharpen=self.params.variant == "code")
        return {"corr_embedding": correlation_loss(target, x, self.params.alpha, self.norm),
                "corr_output": correlation_loss(target, x_hat, self.params.alpha, self.norm)}

    def pretrain_objective(self, autoencoder, x):
        """L_AE = mse(X, X') + λ·[L_cr(Z,X) + L_cr(Z,X')] (eq. 7 with Keras mse)."""
        z, x_hat = autoencoder(x)
        x = x.reshape(x_hat.shape)
        rec = reconstruction_loss(x_hat, x)
        corr = self.correlation_terms(z, x, x_hat)
        loss = rec + self.params.pretrain_corr_weight * (corr["corr_embedding"] + corr["corr_output"])
        return {"loss": loss, "reconstruction": rec, **corr}

    def batch_loss(self, model, x, target):
        p = self.params
        ae = model.autoencoder
        z = ae.encode(x)
        x = x.reshape(len(x), -1)
        if p.variant == "code":
            x_hat = ae.decode(z)
        else:
            # Algorithm 1: the encoder sees L_DC through a decoder it does not move; the decoder
            # moves on L_AE alone (below), so here its parameters are constants.
            frozen = {k: v.detach() for k, v in ae.decoder.named_parameters()}
            x_hat = functional_call(ae.decoder, frozen, (z,))
        q = model.soft_assign(z)
        terms = {"kl": kl_divergence(target, q, p.kl_reduction),
                 "affinity": affinity_loss(q, z, p.alpha, self.norm),
                 **self.correlation_terms(z, x, x_hat)}
        loss = terms["kl"] + p.affinity_weight * terms["affinity"] + p.corr_weight * (
            terms["corr_embedding"] + terms["corr_output"])
        if p.variant == "paper":
            terms["reconstruction"], decoder_loss = self.decoder_objective(model, z.detach(), x)
            loss = loss + decoder_loss
        return {"loss": loss, **terms}

    def decoder_objective(self, model, z, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Algorithm 1, line 13: ``(L_r, L_AE)`` for the decoder's step, L_AE = L_r + λ·L_cr(Z,X')
        from a fixed Z (L_cr(Z,X) has no decoder parameter in it)."""
        x_hat = model.autoencoder.decode(z)
        rec = reconstruction_loss(x_hat, x)
        target = embedding_target(z, self.params.alpha, "global", sharpen=False)
        return rec, rec + self.params.pretrain_corr_weight * correlation_loss(target, x_hat, self.params.alpha, "global")
