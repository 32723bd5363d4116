"""DCEC (Guo et al. 2017): IDEC on a convolutional autoencoder, the image baseline DECS and
AE+DAC compare with (docs/methods.md#dcec).

Pretrain the CAE (Adam, 200 epochs, MSE), k-means on its embedding, then ``mse + γ·KL(P‖Q)``
with DEC's full-data target every ``update_interval`` iterations and its tolerance stop.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..networks.dcec_cae import DCECAutoencoder
from ..networks.mlp import ClusterModel
from . import register
from .base import ImageMethod, Params
from .idec import IDEC


class DCECParams(Params):
    filters: list[int] = Field([32, 64, 128], min_length=3, max_length=3, description="Widths of the three conv layers.")
    embedding_dim: int = Field(10, ge=1, le=4096, description="Width of the linear embedding.")
    pretrain_epochs: int = Field(200, ge=0, le=10_000, description="Autoencoder pretraining epochs.")
    pretrain_batch_size: int = Field(256, ge=1, le=65_536)
    pretrain_optimizer: Literal["adam", "sgd"] = "adam"
    pretrain_lr: float = Field(1e-3, gt=0, le=10)
    pretrain_momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by Adam).")
    kmeans_n_init: int = Field(20, ge=1, le=1000, description="k-means restarts for the centre init.")
    kmeans_backend: Literal["auto", "torch", "sklearn"] = Field(
        "auto", description="Where k-means runs: 'auto' is torch on a GPU, scikit-learn on the CPU.")
    alpha: float = Field(1.0, gt=0, le=100, description="Student-t degrees of freedom.")
    gamma: float = Field(0.1, ge=0, le=1000, description="Weight of the clustering loss against reconstruction.")
    maxiter: int = Field(20_000, ge=1, le=10_000_000, description="Fine-tuning iterations at most.")
    update_interval: int = Field(140, ge=1, description="Iterations between full-data target updates.")
    tol: float = Field(0.001, ge=0, le=1, description="Stop when fewer labels than this changed between updates.")
    batch_size: int = Field(256, ge=1, le=65_536)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    kl_reduction: Literal["batchmean", "mean", "sum"] = Field("batchmean", description="Keras kld = batchmean.")


@register
class DCEC(ImageMethod, IDEC):
    name = "dcec"
    summary = ("Deep Convolutional Embedded Clustering: IDEC on a convolutional autoencoder "
               "(reconstruction plus KL self-training, decoder kept).")
    params_model = DCECParams
    network_type = DCECAutoencoder.type_name
    tiny_preset = {"filters": [4, 8, 8], "embedding_dim": 3, "pretrain_epochs": 3, "pretrain_batch_size": 16,
                   "maxiter": 20, "update_interval": 5, "tol": 0.0, "batch_size": 16, "kmeans_n_init": 2}

    def build_model(self, sample_shape):
        p = self.params
        ae = DCECAutoencoder(*sample_shape, filters=p.filters, embedding_dim=p.embedding_dim)
        return ClusterModel(ae, self.n_clusters, p.embedding_dim, p.alpha)
