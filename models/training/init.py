"""Initial clustering in the embedding: k-means, as every reference implementation does it."""
from __future__ import annotations

import numpy as np
import torch

from ..phases import INIT
from .data import ArrayData
from .kmeans import fit_kmeans, resolve_backend
from .phase import Phase


@torch.no_grad()
def embed_all(model, data: ArrayData) -> np.ndarray:
    model.eval()
    return torch.cat([model.embed(x) for x in data.chunks()]).cpu().numpy()


@torch.no_grad()
def embed_on_device(model, data: ArrayData) -> torch.Tensor:
    """The embedding of every sample, kept on the training device."""
    model.eval()
    return torch.cat([model.embed(x) for x in data.chunks()])


def kmeans_init(model, data: ArrayData, *, n_init: int, seed: int, backend: str = "auto") -> np.ndarray:
    """Fit ``KMeans(K, n_init)`` on the embedding, copy its centres into the model, return its labels.

    docs/methods.md#k-means-initialisation: always pass ``n_init`` explicitly (sklearn's default became 'auto').
    ``backend`` (``models.training.kmeans``): ``"auto"`` runs it in torch on a CUDA device (the
    embedding never leaves it) and with scikit-learn on the CPU, as it always ran.
    """
    if resolve_backend(backend, data.device) == "sklearn":
        z = torch.as_tensor(embed_all(model, data))  # the host copy scikit-learn always got
    else:
        z = embed_on_device(model, data)
    centers, labels, _ = fit_kmeans(z, model.centers.shape[0], n_init=n_init, seed=seed, backend=backend)
    with torch.no_grad():
        model.centers.copy_(centers.to(model.centers.device))
    return labels


class KMeansInitPhase(Phase):
    """No steps: k-means on the embedding sets the centres; its labels are reported (and are the
    ``run.last_labels`` the next phase starts from)."""

    name = INIT

    def __init__(self, *, n_init: int, seed: int, backend: str = "auto"):
        self.n_init, self.seed, self.backend = n_init, seed, backend

    def begin(self, model, data, run):
        labels = kmeans_init(model, data, n_init=self.n_init, seed=self.seed, backend=self.backend)
        run.report_labels(self.name, 0, labels, None)
