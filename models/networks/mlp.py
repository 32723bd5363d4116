"""The dense networks: the autoencoder of DEC/IDEC/CDC/DCCF and the clustering model around any
registered autoencoder.

Every network is described by a JSON-able ``spec`` dict with a registered ``"type"``, so a saved
model can be rebuilt without pickle (see ``models.networks`` and ``models.persistence``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..losses import soft_assign
from . import build_network, register_network

INITS = ("glorot_uniform", "variance_scaling", "torch_default")


def init_linear(layer: nn.Linear, scheme: str) -> None:
    """Initialise one dense layer the way the reference code does (docs/methods.md#initialisation).

    ``glorot_uniform`` is the Keras default; ``variance_scaling`` is DEC-keras'
    VarianceScaling(1/3, fan_in, uniform) = U(±sqrt(1/fan_in)). Both zero the bias, as Keras
    does. ``torch_default`` keeps PyTorch's own init (IDEC-pytorch lineage).
    """
    if scheme == "torch_default":
        return
    if scheme == "glorot_uniform":
        nn.init.xavier_uniform_(layer.weight)
    elif scheme == "variance_scaling":
        bound = math.sqrt(1.0 / layer.in_features)
        nn.init.uniform_(layer.weight, -bound, bound)
    else:
        raise ValueError(f"unknown init {scheme!r}; use one of {INITS}")
    nn.init.zeros_(layer.bias)


def _mlp(dims: list[int], init: str) -> nn.Sequential:
    """Linear layers through ``dims``, ReLU between them, linear output."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        linear = nn.Linear(fan_in, fan_out)
        init_linear(linear, init)
        layers.append(linear)
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@register_network("dense")
class DenseAutoencoder(nn.Module):
    """Symmetric fully connected autoencoder ``D-h1-...-hk-d`` with a linear embedding and output."""

    def __init__(self, input_dim: int, hidden_dims: list[int], embedding_dim: int, init: str = "glorot_uniform"):
        super().__init__()
        self.spec = {
            "type": "dense",
            "input_dim": int(input_dim),
            "hidden_dims": [int(h) for h in hidden_dims],
            "embedding_dim": int(embedding_dim),
        }
        dims = [input_dim, *hidden_dims, embedding_dim]
        self.encoder = _mlp(dims, init)
        self.decoder = _mlp(dims[::-1], init)

    @property
    def embedding_dim(self) -> int:
        return self.spec["embedding_dim"]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decode(z)


@register_network("cluster")
class ClusterModel(nn.Module):
    """An embedding (any registered autoencoder's ``encode``, or the identity for k-means) plus
    K centres; satisfies ``models.networks.ClusterNetwork``.

    ``soft_assign`` is DEC's Student-t assignment with degree of freedom ``alpha``.
    """

    def __init__(self, autoencoder: nn.Module | None, n_clusters: int, embedding_dim: int, alpha: float = 1.0):
        super().__init__()
        self.autoencoder = autoencoder
        self.alpha = float(alpha)
        self.centers = nn.Parameter(torch.zeros(n_clusters, embedding_dim))

    @property
    def spec(self) -> dict:
        return {
            "type": "cluster",
            "autoencoder": None if self.autoencoder is None else self.autoencoder.spec,
            "n_clusters": int(self.centers.shape[0]),
            "embedding_dim": int(self.centers.shape[1]),
            "alpha": self.alpha,
        }

    @classmethod
    def from_spec(cls, spec: dict) -> "ClusterModel":
        ae = None if spec["autoencoder"] is None else build_network(spec["autoencoder"])
        return cls(ae, spec["n_clusters"], spec["embedding_dim"], spec["alpha"])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) if self.autoencoder is None else self.autoencoder.encode(x)

    def soft_assign(self, z: torch.Tensor) -> torch.Tensor:
        return soft_assign(z, self.centers, self.alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.soft_assign(self.embed(x))
