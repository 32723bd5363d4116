"""DECS (Cheng et al., IJCAI 2024): deep embedding clustering driven by sample stability (METHODS §3).

A convolutional autoencoder pretrained on augmented images; then the encoder and Student-t
centres are trained on the stability loss, with an Otsu threshold computed on every augmented
mini-batch first (BN in inference mode, no gradient). No target distribution, no stop on label
change. Defaults follow the authors' code; ``variant="paper"`` switches to the paper's formulas
and its α, λ and iteration count (unless those are given).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from ..images import DECSAutoencoder
from ..images.augment import augment
from ..images.decs import VARIANTS, otsu_threshold, stability_loss
from ..networks import ClusterModel
from ..phases import FINETUNE
from ..training import KMeansInitPhase, Phase, PretrainPhase, make_optimizer, predict_soft, reconstruction_objective
from . import register
from .base import ClusteringMethod, Params
from ._image import ImageMethod

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
                KMeansInitPhase(n_init=p.kmeans_n_init, seed=self.seed),
                StabilityPhase(p)]
