"""k-means on the (scaled) input: the baseline every paper compares against."""
from __future__ import annotations

import numpy as np
import torch
from typing import Literal

from pydantic import Field

from ..networks.mlp import ClusterModel
from ..phases import INIT
from ..training import Phase
from ..training.kmeans import fit_kmeans
from . import register
from .base import ClusteringMethod, Params


class KMeansParams(Params):
    n_init: int = Field(20, ge=1, le=1000, description="Restarts (20, as the deep methods' k-means init).")
    max_iter: int = Field(300, ge=1, le=100_000)
    backend: Literal["auto", "torch", "sklearn"] = Field(
        "auto", description="Where k-means runs: 'auto' is torch on a GPU, scikit-learn on the CPU.")


class KMeansPhase(Phase):
    """No steps: Lloyd's algorithm on the scaled input sets the centres; one history row with the
    inertia per sample."""

    name = INIT

    def __init__(self, n_clusters: int, params: KMeansParams, seed: int):
        self.n_clusters, self.params, self.seed = n_clusters, params, seed
        self.inertia: float | None = None

    def begin(self, model, data, run):
        # Lloyd's algorithm needs every row each iteration, so the data is gathered here (on the
        # device: torch's k-means stays there, scikit-learn's copies it to the host).
        x = torch.cat(list(data.chunks())).flatten(1)
        centers, labels, inertia = fit_kmeans(x, self.n_clusters, n_init=self.params.n_init,
                                              max_iter=self.params.max_iter, seed=self.seed,
                                              backend=self.params.backend)
        with torch.no_grad():
            model.centers.copy_(centers.to(model.centers.device))
        self.inertia = float(torch.tensor(inertia / len(x)))  # float32, as history rows always were
        run.report_labels(self.name, 0, labels, None)

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
