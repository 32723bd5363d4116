"""Initial clustering in the embedding: k-means, as every reference implementation does it."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

from ..phases import INIT
from .data import ArrayData
from .phase import Phase


@torch.no_grad()
def embed_all(model, data: ArrayData) -> np.ndarray:
    model.eval()
    return torch.cat([model.embed(x) for x in data.chunks()]).cpu().numpy()


def kmeans_init(model, data: ArrayData, *, n_init: int, seed: int) -> np.ndarray:
    """Fit ``KMeans(K, n_init)`` on the embedding, copy its centres into the model, return its labels.

    METHODS §1.1: always pass ``n_init`` explicitly (sklearn's default became 'auto').
    """
    z = embed_all(model, data)
    km = KMeans(n_clusters=model.centers.shape[0], n_init=n_init, random_state=seed).fit(z)
    with torch.no_grad():
        model.centers.copy_(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
    return km.labels_.astype(np.int64)


class KMeansInitPhase(Phase):
    """No steps: k-means on the embedding sets the centres; its labels are reported (and are the
    ``run.last_labels`` the next phase starts from)."""

    name = INIT

    def __init__(self, *, n_init: int, seed: int):
        self.n_init, self.seed = n_init, seed

    def begin(self, model, data, run):
        run.report_labels(self.name, 0, kmeans_init(model, data, n_init=self.n_init, seed=self.seed), None)
