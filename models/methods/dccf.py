"""DCCF (Cai, Wang, Xu, Guo; PR 2022): contractive representation plus unsupervised focal loss
(docs/methods.md#dccf).

No code is public; the defaults are the paper's where it speaks and the IDEC-pytorch lineage's
where it is silent (each such choice marked in docs/methods.md#dccf): a ``d-500-500-1000-K`` autoencoder with PyTorch's
init, pretrained 100 epochs on MSE alone (Adam 1e-3, batch 256); then
``L = L_rec + λ·Σ_batch ‖J(x)‖²_F + β·(KL(T‖S) + focal)`` with λ = 1e-7, β = 0.1, γ = 2, the exact
Jacobian norm, ``F.kl_div``'s mean over elements, the hard pseudo-label focal loss, the target
recomputed before every epoch and a stop once at most 0.1% of the labels change, ≤ 200 epochs.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field

from ..losses import KERAS_EPS, kl_divergence, reconstruction_loss
from ..networks.mlp import INITS
from ..training import TargetPhase, make_optimizer
from . import register
from .base import AutoencoderMethod, AutoencoderParams

# -- the contractive penalty -------------------------------------------------------------------
# The contractive penalty ‖J(x)‖²_F of an encoder (Rifai et al. 2011; Cai et al. 2022, eq. 6; docs/methods.md#dccf).
#
# ``J(x) = ∂h/∂x`` is the K×D Jacobian of the encoder at one sample. The exact norm takes K
# vector-Jacobian products (one batched backward pass) and keeps their graph, so the penalty can
# be trained on. It is *not* ``autograd.grad(h, x, ones)``, which gives the row sums of J.
# ``"hutchinson"`` estimates it without bias as ``E_v ‖Jᵀv‖²`` with ``v ~ N(0, I_K)``.

ESTIMATORS = ("exact", "hutchinson")


def encode_with_jacobian_norm(encoder: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                              estimator: str = "exact", probes: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, n)``: the encoding ``h = encoder(x)`` (B×K) and each sample's ‖J(x_i)‖²_F (B,).

    ``encoder`` must treat rows independently (no batch statistics), so the gradient of a sum
    over the batch is each sample's own. Both outputs stay differentiable in the encoder's
    parameters when grad mode is on.
    """
    differentiable = torch.is_grad_enabled()
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        h = encoder(x)
        batch, k = h.shape
        if estimator == "exact":
            grad_outputs = torch.eye(k, dtype=h.dtype, device=h.device).unsqueeze(1).expand(k, batch, k)
        elif estimator == "hutchinson":
            grad_outputs = torch.randn(probes, batch, k, dtype=h.dtype, device=h.device)
        else:
            raise ValueError(f"unknown Jacobian estimator {estimator!r}; use one of {ESTIMATORS}")
        # (rows of Jᵀ per sample): one VJP per row of grad_outputs, batched.
        (vjp,) = torch.autograd.grad(h, x, grad_outputs, is_grads_batched=True, create_graph=differentiable)
    squares = vjp.pow(2).flatten(2).sum(2)  # (K or probes, B)
    norms = squares.sum(0) if estimator == "exact" else squares.mean(0)
    return (h, norms) if differentiable else (h.detach(), norms.detach())


# -- the unsupervised focal loss ---------------------------------------------------------------
# DCCF's unsupervised focal loss: soft assignments S scored against the self-training target T
# (Cai et al. 2022, eq. 11–12, docs/methods.md#dccf; Lin et al.'s ``FL(p_t) = -(1 - p_t)^γ log p_t``
# with T in place of the labels).
#
# - ``"hard"`` (default, the most literal reading of eq. 11 with a one-hot y_true): the pseudo-label
#   is ``c_i = argmax_j t_ij`` and ``p_t = s_{i,c_i}``.
# - ``"soft"``: ``p_t = Σ_j s_ij t_ij``.
# - ``"categorical"``: the Keras categorical focal loss ``Σ_j -t_ij (1 - s_ij)^γ log s_ij``.
#
# Each is averaged over the batch; T is a constant (no gradient reaches it).

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


# -- the method --------------------------------------------------------------------------------
class DCCFParams(AutoencoderParams):
    hidden_dims: list[int] = Field([500, 500, 1000], description="Encoder widths; the decoder mirrors them.")
    embedding_dim: int | None = Field(
        None, ge=1, le=4096, description="Width of the embedding d'; unset means the number of clusters K (paper).")
    init: Literal[INITS] = Field(
        "torch_default", description="Dense layer initialisation [guess: PyTorch's own, IDEC-pytorch lineage].")
    pretrain_epochs: int = Field(100, ge=0, le=10_000, description="Autoencoder pretraining epochs (paper: 100).")
    contractive_in_pretrain: bool = Field(
        False, description="Add λ·‖J‖²_F to the pretraining loss [guess: no, a plain stacked autoencoder].")
    contractive_weight: float = Field(1e-7, ge=0, le=1e6, description="λ: weight of the contractive penalty; 0 drops it.")
    contractive_reduction: Literal["sum", "mean"] = Field(
        "sum", description="‖J(x)‖²_F summed over the batch (eq. 7's Σ_x, default) or averaged.")
    jacobian: Literal[ESTIMATORS] = Field(
        "exact", description="'exact' Frobenius norm (K vector-Jacobian products) or an unbiased 'hutchinson' estimate.")
    hutchinson_probes: int = Field(1, ge=1, le=1024, description="Gaussian probes per sample for 'hutchinson'.")
    reconstruction_reduction: Literal["mean", "sample_sum"] = Field(
        "mean", description="'mean' over elements (F.mse_loss) or 'sample_sum' ‖x−x'‖² per sample (paper's eq. 7).")
    clustering_weight: float = Field(0.1, ge=0, le=1000, description="β: weight of the clustering loss l_cl + l_fl.")
    focal: Literal[(*FOCAL_KINDS, "none")] = Field(
        "hard", description="Focal loss p_t: 'hard' s at argmax of T, 'soft' Σ s·t, 'categorical', or 'none'.")
    focal_gamma: float = Field(2.0, ge=0, le=100, description="γ: focusing parameter of the focal loss.")
    kl_reduction: Literal["mean", "batchmean", "sum"] = Field(
        "mean", description="KL(T‖S): 'mean' over all B·K elements (F.kl_div, default) or Keras 'batchmean'.")
    alpha: float = Field(1.0, gt=0, le=100, description="Student-t degrees of freedom.")
    max_epochs: int = Field(200, ge=1, le=100_000, description="Clustering epochs at most (paper: 200).")
    update_interval: int = Field(1, ge=1, le=100_000, description="O: epochs between target updates.")
    tol: float | None = Field(0.001, ge=0, le=1, description="Stop when fewer labels than this changed between updates.")
    batch_size: int = Field(256, ge=1, le=65_536)
    batch_order: Literal["sequential", "shuffle"] = Field(
        "sequential", description="Clustering batches in data order (IDEC-pytorch) or reshuffled every epoch.")
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by Adam).")


@register
class DCCF(AutoencoderMethod):
    name = "dccf"
    summary = ("DCCF: contractive autoencoder (exact Jacobian Frobenius penalty) with DEC's KL "
               "clustering loss plus an unsupervised focal loss on target pseudo-labels.")
    params_model = DCCFParams
    tiny_preset = {"hidden_dims": [16], "pretrain_epochs": 3, "pretrain_batch_size": 16, "max_epochs": 3,
                   "batch_size": 16, "kmeans_n_init": 2}

    def __init__(self, params, n_clusters, seed):
        if params.embedding_dim is None:  # d' = K (paper §4.2)
            params = params.model_copy(update={"embedding_dim": n_clusters})
        super().__init__(params, n_clusters, seed)

    def representation_terms(self, autoencoder, x, contractive: bool):
        """``(z, terms)`` with L_crl's parts: reconstruction, and λ's ‖J‖²_F if ``contractive``."""
        p = self.params
        if contractive:
            z, norms = encode_with_jacobian_norm(autoencoder.encode, x, estimator=p.jacobian,
                                                 probes=p.hutchinson_probes)
        else:
            z = autoencoder.encode(x)
        x_hat = autoencoder.decode(z)
        rec = reconstruction_loss(x_hat, x.reshape(x_hat.shape), p.reconstruction_reduction)
        terms = {"reconstruction": rec}
        loss = rec
        if contractive:
            terms["contractive"] = norms.sum() if p.contractive_reduction == "sum" else norms.mean()
            loss = loss + p.contractive_weight * terms["contractive"]
        return z, {"loss": loss, **terms}

    def pretrain_objective(self, autoencoder, x):
        contractive = self.params.contractive_in_pretrain and self.params.contractive_weight > 0
        return self.representation_terms(autoencoder, x, contractive)[1]

    def batch_loss(self, model, x, target):
        p = self.params
        z, terms = self.representation_terms(model.autoencoder, x, p.contractive_weight > 0)
        s = model.soft_assign(z)
        terms["kl"] = kl_divergence(target, s, p.kl_reduction)
        clustering = terms["kl"]
        if p.focal != "none":
            terms["focal"] = focal_loss(s, target, p.focal_gamma, p.focal)
            clustering = clustering + terms["focal"]
        terms["loss"] = terms["loss"] + p.clustering_weight * clustering
        return terms

    def finetune_phase(self, n_samples):
        """Epochs in iterations: the target is updated before every ``update_interval``-th epoch."""
        p = self.params
        per_epoch = math.ceil(n_samples / p.batch_size)
        return TargetPhase(self.batch_loss, self.finetune_optimizer, maxiter=p.max_epochs * per_epoch,
                           update_interval=p.update_interval * per_epoch, batch_size=p.batch_size, tol=p.tol,
                           order=p.batch_order)

    def finetune_optimizer(self, model):
        p = self.params
        return make_optimizer(model.parameters(), p.optimizer, p.lr, p.momentum)
