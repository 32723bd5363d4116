"""DEC (Xie et al. 2016), following DEC-keras (docs/methods.md#dec)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..losses import kl_divergence
from ..training import TargetPhase, make_optimizer
from . import register
from .base import AutoencoderMethod, AutoencoderParams


class DECParams(AutoencoderParams):
    alpha: float = Field(1.0, gt=0, le=100, description="Student-t degrees of freedom.")
    maxiter: int = Field(20_000, ge=1, le=10_000_000, description="Fine-tuning iterations at most.")
    update_interval: int = Field(140, ge=1, description="Iterations between full-data target updates.")
    tol: float = Field(0.001, ge=0, le=1, description="Stop when fewer labels than this changed between updates.")
    batch_size: int = Field(256, ge=1, le=65_536)
    optimizer: Literal["adam", "sgd"] = "sgd"
    lr: float = Field(0.01, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    kl_reduction: Literal["batchmean", "mean", "sum"] = Field("batchmean", description="Keras kld = batchmean.")


@register
class DEC(AutoencoderMethod):
    name = "dec"
    summary = "Deep Embedded Clustering: pretrained autoencoder, then KL(P‖Q) self-training of the encoder."
    params_model = DECParams
    tiny_preset = {"hidden_dims": [16], "embedding_dim": 2, "pretrain_epochs": 3, "pretrain_batch_size": 16,
                   "maxiter": 20, "update_interval": 5, "batch_size": 16, "kmeans_n_init": 2}
    batch_order = "sequential"  # DEC-keras
    # The batch loss has fixed shapes and no data-dependent Python branch: a GPU can capture the
    # step whole (models.training.accel, setting "capture"). CDC's pairwise losses say no.
    static_step = True

    def finetune_phase(self, n_samples):
        p = self.params
        phase = TargetPhase(self.batch_loss, self.finetune_optimizer, maxiter=p.maxiter,
                            update_interval=p.update_interval, batch_size=p.batch_size, tol=p.tol,
                            order=self.batch_order)
        phase.static_step = self.static_step
        return phase

    def finetune_optimizer(self, model):
        p = self.params
        return make_optimizer(self.finetune_parameters(model), p.optimizer, p.lr, p.momentum)

    def finetune_parameters(self, model):
        """DEC drops the decoder: only the encoder and the centres move."""
        return [*model.autoencoder.encoder.parameters(), model.centers]

    def batch_loss(self, model, x, target):
        kl = kl_divergence(target, model(x), self.params.kl_reduction)
        return {"loss": kl, "kl": kl}
