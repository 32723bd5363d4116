"""DCCF (Cai, Wang, Xu, Guo; PR 2022): contractive representation plus unsupervised focal loss
(METHODS §4).

No code is public; the defaults are the paper's where it speaks and the IDEC-pytorch lineage's
where it is silent (ambiguity register #12–#17): a ``d-500-500-1000-K`` autoencoder with PyTorch's
init, pretrained 100 epochs on MSE alone (Adam 1e-3, batch 256); then
``L = L_rec + λ·Σ_batch ‖J(x)‖²_F + β·(KL(T‖S) + focal)`` with λ = 1e-7, β = 0.1, γ = 2, the exact
Jacobian norm, ``F.kl_div``'s mean over elements, the hard pseudo-label focal loss, the target
recomputed before every epoch and a stop once at most 0.1% of the labels change, ≤ 200 epochs.
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from ..contractive import ESTIMATORS, encode_with_jacobian_norm
from ..focal import FOCAL_KINDS, focal_loss
from ..losses import kl_divergence, reconstruction_loss
from ..networks import INITS
from ..training import TargetPhase, make_optimizer
from . import register
from .base import AutoencoderMethod, AutoencoderParams


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
        if params.embedding_dim is None:  # d' = K (paper §4.1)
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
