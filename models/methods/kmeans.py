"""k-means on the (scaled) input: the baseline every paper compares against."""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from sklearn.cluster import KMeans

from ..networks import ClusterModel
from . import register
from .base import ClusteringMethod, Params


class KMeansParams(Params):
    n_init: int = Field(20, ge=1, le=1000, description="Restarts; METHODS §1.1 uses 20 everywhere.")
    max_iter: int = Field(300, ge=1, le=100_000)


@register
class KMeansMethod(ClusteringMethod):
    name = "kmeans"
    summary = "k-means (Lloyd, k-means++ init) on the scaled input; soft assignments by a Student-t kernel."
    params_model = KMeansParams
    centers_space = "input"

    def build_model(self, sample_shape):
        return ClusterModel(None, self.n_clusters, int(np.prod(sample_shape)))

    def train(self, model, data, run, *, pretrained, resume):
        # Lloyd's algorithm needs every row each iteration, so the data is gathered here.
        run.callbacks.on_phase_begin("init", 1)
        x = torch.cat(list(data.chunks())).flatten(1).cpu().numpy()
        km = KMeans(self.n_clusters, n_init=self.params.n_init, max_iter=self.params.max_iter,
                    random_state=self.seed).fit(x)
        with torch.no_grad():
            model.centers.copy_(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
        inertia = torch.tensor(km.inertia_ / len(x))
        run.end_epoch("init", 0, 1, {"loss": inertia, "inertia": inertia}, 1)
