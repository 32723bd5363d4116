"""IDEC (Guo et al. 2017): DEC that keeps the decoder and its reconstruction loss (docs/methods.md#idec)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..losses import kl_divergence, reconstruction_loss
from . import register
from .dec import DEC, DECParams


class IDECParams(DECParams):
    gamma: float = Field(0.1, ge=0, le=1000, description="Weight of the clustering loss against reconstruction.")
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10)


@register
class IDEC(DEC):
    name = "idec"
    summary = "Improved DEC: KL clustering loss plus the autoencoder's reconstruction loss, decoder kept."
    params_model = IDECParams

    def finetune_parameters(self, model):
        return list(model.parameters())

    def batch_loss(self, model, x, target):
        z, x_hat = model.autoencoder(x)
        rec = reconstruction_loss(x_hat, x.reshape(x_hat.shape))
        kl = kl_divergence(target, model.soft_assign(z), self.params.kl_reduction)
        return {"loss": rec + self.params.gamma * kl, "reconstruction": rec, "kl": kl}
