"""DEC (Xie et al. 2016), following DEC-keras (METHODS §6.1)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..losses import kl_divergence
from ..training import ClusteringSchedule, make_optimizer, run_clustering
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

    def schedule(self) -> ClusteringSchedule:
        p = self.params
        return ClusteringSchedule(p.maxiter, p.update_interval, p.batch_size, p.tol, "sequential")

    def finetune_parameters(self, model):
        """DEC drops the decoder: only the encoder and the centres move."""
        return [*model.autoencoder.encoder.parameters(), model.centers]

    def batch_loss(self, model, x, target):
        kl = kl_divergence(target, model(x), self.params.kl_reduction)
        return {"loss": kl, "kl": kl}

    def finetune(self, model, data, run, initial_labels, resume):
        p = self.params
        optimizer = make_optimizer(self.finetune_parameters(model), p.optimizer, p.lr, p.momentum)
        if resume is not None:
            optimizer.load_state_dict(resume["optimizer"])
        run_clustering(model, data, optimizer, self.batch_loss, self.schedule(), seed=self.seed, run=run,
                       initial_labels=initial_labels, resume=resume)
