"""DECS (Cheng et al., IJCAI 2024): deep embedding clustering driven by sample stability
(docs/methods.md#decs).

A convolutional autoencoder pretrained on augmented images; then the encoder and Student-t
centres are trained on the stability loss, with an Otsu threshold computed on every augmented
mini-batch first (BN in inference mode, no gradient). No target distribution, no stop on label
change. Defaults follow the authors' code; ``variant="paper"`` switches to the paper's formulas
and its α, λ and iteration count (unless those are given).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import Tensor

from ..networks.decs_cae import DECSAutoencoder
from ..networks.mlp import ClusterModel
from ..phases import FINETUNE
from ..training import KMeansInitPhase, Phase, PretrainPhase, make_optimizer, predict_soft, reconstruction_objective
from ..training.augment import augment
from . import register
from .base import ClusteringMethod, ImageMethod, Params

# -- the stability loss and the Otsu threshold -------------------------------------------------
# DECS' clustering loss pieces (Cheng et al., IJCAI 2024, eq. 6–8; docs/methods.md#decs), pure tensor functions.
#
# Per mini-batch: an Otsu threshold t on the batch's soft assignments q (B×K), the determinacy
# ``fq`` of every sample-centre pair, each sample's stability ``sq`` and the loss built from it.
#
# Two variants. ``"code"`` (default) is the authors' code, which produced the paper's table:
# ``fq = |q−t|/t`` below t and ``|q−t|/(1−t)`` above, ``sq = mean(fq) − 0.4·var(fq)``,
# ``L = 1 − (mean(sq) + var(sq))``, Student-t α = 0.5, 20,000 iterations. ``"paper"`` is the text:
# squared determinacy (eq. 6), λ = 0.8 (eq. 7), ``L = 1 − mean(sq)`` (eq. 8), α = 1, 10,000
# iterations. Variances are population variances, as ``tf.math.reduce_variance``.

OTSU_BINS = 1000
T_GUARD = 1e-3  # keeps t off 0 and 1, where the determinacy divides by zero (docs/methods.md#decs)


@dataclass(frozen=True)
class DECSVariant:
    """The settings that differ between the authors' code and the paper (docs/methods.md#decs)."""

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
    # Counted with index_add_, not bincount: CUDA's bincount reads the largest value back to
    # the host to size its output, a device sync in every step.
    counts = torch.zeros(bins, dtype=torch.int64, device=index.device).index_add_(0, index, torch.ones_like(index))
    p = counts.to(torch.float64) / values.numel()
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


# -- the method --------------------------------------------------------------------------------
CODE = VARIANTS["code"]


class DECSParams(Params):
    variant: Literal["code", "paper"] = Field(
        "code", description="'code': the authors' code (the published numbers); 'paper': the paper's formulas "
                            "(squared determinacy, λ=0.8, loss 1−mean(sq), α=1, 10,000 iterations).")
    filters: list[int] = Field([32, 64, 128, 256], min_length=4, max_length=4,
                               description="Widths of the four conv layers.")
    embedding_dim: int = Field(10, ge=1, le=4096, description="Width of the linear embedding (10 for every data set).")
    pretrain_epochs: int = Field(500, ge=0, le=10_000, description="Autoencoder pretraining epochs (Adam).")
    pretrain_batch_size: int = Field(256, ge=1, le=65_536)
    pretrain_lr: float = Field(1e-3, gt=0, le=10)
    pretrain_augment: bool = Field(True, description="Random rotation ±10° and shift ±10% while pretraining.")
    kmeans_n_init: int = Field(20, ge=1, le=1000, description="k-means restarts for the centre init.")
    kmeans_backend: Literal["auto", "torch", "sklearn"] = Field(
        "auto", description="Where k-means runs: 'auto' is torch on a GPU, scikit-learn on the CPU.")
    maxiter: int = Field(CODE.maxiter, ge=1, le=10_000_000,
                         description="Clustering iterations (20,000 code, 10,000 paper unless given).")
    batch_size: int = Field(256, ge=1, le=65_536)
    lr: float = Field(1e-3, gt=0, le=10, description="Adam learning rate of the clustering phase.")
    augment: bool = Field(True, description="Augment the clustering batches too (the code does).")
    alpha: float = Field(CODE.alpha, gt=0, le=100,
                         description="Student-t degrees of freedom (0.5 code, 1 paper unless given).")
    lam: float = Field(CODE.lam, ge=0, le=100,
                       description="Weight of the determinacy variance in the stability (0.4 code, 0.8 paper unless given).")
    update_interval: int = Field(30, ge=1, description="Iterations between full-data label reports.")

    @model_validator(mode="before")
    @classmethod
    def _variant_defaults(cls, data):
        """The variant decides α, λ and the iterations that are not given explicitly."""
        if isinstance(data, dict) and data.get("variant") in VARIANTS:
            variant = VARIANTS[data["variant"]]
            data = {"alpha": variant.alpha, "lam": variant.lam, "maxiter": variant.maxiter, **data}
        return data


class StabilityPhase(Phase):
    """DECS' clustering phase: sequential, unshuffled batches (the short last one included), each
    (augmented, then) thresholded by Otsu on its eval-mode q and trained on the stability loss."""

    name = FINETUNE
    order = "sequential"

    def __init__(self, params: DECSParams):
        self.p, self.batch_size = params, params.batch_size
        self.transform = augment if params.augment else None
        self.labels: np.ndarray | None = None
        self.label_change: float | None = None

    def iterations(self, n_samples):
        return self.p.maxiter

    def optimizer(self, model):
        # A fresh Adam on the encoder and the centres: the decoder is dropped.
        return make_optimizer([*model.autoencoder.encoder_parameters(), model.centers], "adam", self.p.lr)

    def begin(self, model, data, run):
        self.labels = run.last_labels  # k-means'

    def before_step(self, model, data, iteration, run):
        # The code evaluates argmax q on the clean data every interval and never stops on it.
        if iteration % self.p.update_interval == 0:
            labels = predict_soft(model, data).argmax(1).cpu().numpy()
            self.label_change = None if self.labels is None else float(np.mean(labels != self.labels))
            self.labels = labels
            run.report_labels(self.name, iteration, labels, self.label_change)
        return False

    def step(self, model, batch):
        model.eval()  # the threshold sees BN in inference mode ...
        with torch.no_grad():
            t = otsu_threshold(model(batch.x))
        model.train()  # ... the step uses the batch's statistics
        loss = stability_loss(model(batch.x), t, self.p.variant, self.p.lam)
        return {"loss": loss, "threshold": t}

    def epoch_logs(self):
        return {} if self.label_change is None else {"label_change": self.label_change}

    def state_dict(self):
        return {"labels": None if self.labels is None else torch.as_tensor(self.labels),
                "label_change": self.label_change}

    def load_state_dict(self, state):
        self.labels = None if state["labels"] is None else state["labels"].cpu().numpy()
        self.label_change = state["label_change"]


@register
class DECS(ImageMethod, ClusteringMethod):
    name = "decs"
    summary = ("Deep Embedding Clustering driven by Sample Stability: augmented convolutional autoencoder, "
               "then the encoder trained to make every sample's assignments determinate (no pseudo targets).")
    params_model = DECSParams
    network_type = DECSAutoencoder.type_name
    tiny_preset = {"filters": [4, 4, 8, 8], "embedding_dim": 4, "pretrain_epochs": 3, "pretrain_batch_size": 16,
                   "maxiter": 20, "batch_size": 16, "update_interval": 5, "kmeans_n_init": 2}

    def build_model(self, sample_shape):
        p = self.params
        ae = DECSAutoencoder(*sample_shape, filters=p.filters, embedding_dim=p.embedding_dim)
        return ClusterModel(ae, self.n_clusters, p.embedding_dim, p.alpha)

    def phases(self, n_samples, *, pretrained):
        p = self.params
        pretrain = PretrainPhase(
            reconstruction_objective,  # the augmented image is both input and target
            lambda ae: make_optimizer(ae.parameters(), "adam", p.pretrain_lr),
            epochs=p.pretrain_epochs, batch_size=p.pretrain_batch_size,
            drop_last=True,  # Keras' steps_per_epoch = floor(N / batch)
            transform=augment if p.pretrain_augment else None)
        return [*([] if pretrained else [pretrain]),
                KMeansInitPhase(n_init=p.kmeans_n_init, seed=self.seed, backend=p.kmeans_backend),
                StabilityPhase(p)]
