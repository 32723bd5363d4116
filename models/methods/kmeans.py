"""k-means on the (scaled) input: the baseline every paper compares against."""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from sklearn.cluster import KMeans

from ..networks.mlp import ClusterModel
from ..phases import INIT
from ..training import Phase
from . import register
from .base import ClusteringMethod, Params


class KMeansParams(Params):
    n_init: int = Field(20, ge=1, le=1000, description="Restarts; METHODS §1.1 uses 20 everywhere.")
    max_iter: int = Field(300, ge=1, le=100_000)


class KMeansPhase(Phase):
    """No steps: Lloyd's algorithm on the scaled input sets the centres; one history row with the
    inertia per sample."""

    name = INIT

    def __init__(self, n_clusters: int, params: KMeansParams, seed: int):
        self.n_clusters, self.params, self.seed = n_clusters, params, seed
        self.inertia: float | None = None

    def begin(self, model, data, run):
        # Lloyd's algorithm needs every row each iteration, so the data is gathered here.
        x = torch.cat(list(data.chunks())).flatten(1).cpu().numpy()
        km = KMeans(self.n_clusters, n_init=self.params.n_init, max_iter=self.params.max_iter,
                    random_state=self.seed).fit(x)
        with torch.no_grad():
            model.centers.copy_(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
        self.inertia = float(torch.tensor(km.inertia_ / len(x)))  # float32, as history rows always were
        run.report_labels(self.name, 0, km.labels_.astype(np.int64), None)

    def epoch_logs(self):
        return {"loss": self.inertia, "inertia": self.inertia}


@register
class KMeansMethod(ClusteringMethod):
    name = "kmeans"
    summary = "k-means (Lloyd, k-means++ init) on the scaled input; soft assignments by a Student-t kernel."
    params_model = KMeansParams
    centers_space = "input"
    tiny_preset = {"n_init": 2}

    def build_model(self, sample_shape):
        return ClusterModel(None, self.n_clusters, int(np.prod(sample_shape)))

    def phases(self, n_samples, *, pretrained):
        return [KMeansPhase(self.n_clusters, self.params, self.seed)]
