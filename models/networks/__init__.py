"""The networks and the model contract: what every trained network offers the estimator and
persistence, and the one registry that rebuilds a network from its ``spec``.

The estimator and ``models.persistence`` read a network only through the members of
``ClusterNetwork``, so a method may bring any ``nn.Module`` that has them (a dense or
convolutional autoencoder with centres, a softmax head, ...). A network type is made rebuildable
from its ``spec`` by registering it::

    @register_network("conv")
    class ConvAutoencoder(nn.Module): ...

``build_network(spec)`` then rebuilds it from ``spec["type"]`` (with the class's
``from_spec(spec)`` if it has one, else its constructor called with the other spec keys).

Every module of this package registers its networks by existing: the package imports them all
(``mlp``: the dense autoencoder and ``ClusterModel``; ``conv``: what the convolutional
autoencoders share; ``decs_cae``, ``dcec_cae``, ``dac``: the image methods' networks).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class ClusterNetwork(Protocol):
    """A trained clustering network (and an ``nn.Module``: ``state_dict``, ``to``, ``eval``).

    ``embed(x)``: the representation of a batch of scaled samples, shape (B, d).
    ``soft_assign(z)``: cluster probabilities of embeddings, shape (B, K), rows summing to 1
    (a Student-t kernel to centres, or a head's softmax).
    ``centers``: the (K, d) cluster centres, or None for a method without any (the estimator
    then takes the mean embedding of each cluster, once, at the end of ``fit``).
    ``autoencoder``: the pretrained part another run can reuse (``fit(pretrained=...)``), or None.
    ``spec``: a JSON-able dict with a registered ``"type"``; ``build_network(spec)`` rebuilds
    the architecture (weights are loaded separately from its ``state_dict``).
    """

    autoencoder: nn.Module | None

    @property
    def spec(self) -> dict: ...

    @property
    def centers(self) -> torch.Tensor | None: ...

    def embed(self, x: torch.Tensor) -> torch.Tensor: ...

    def soft_assign(self, z: torch.Tensor) -> torch.Tensor: ...


NETWORKS: dict[str, type[nn.Module]] = {}


def register_network(type_name: str):
    """Class decorator: make ``type_name`` (the class's ``spec["type"]``) rebuildable by ``build_network``."""

    def register(cls: type[nn.Module]) -> type[nn.Module]:
        known = NETWORKS.get(type_name)
        if known is not None and known.__qualname__ != cls.__qualname__:  # re-importing a module is fine
            raise ValueError(f"network type {type_name!r} is already registered by {NETWORKS[type_name].__name__}")
        NETWORKS[type_name] = cls
        return cls

    return register


def build_network(spec: dict) -> nn.Module:
    """Rebuild a registered network (untrained) from its ``spec``."""
    kind = spec.get("type")
    if kind not in NETWORKS:
        raise ValueError(f"unknown network type {kind!r}; known: {sorted(NETWORKS)}")
    cls = NETWORKS[kind]
    if hasattr(cls, "from_spec"):
        return cls.from_spec(spec)
    return cls(**{k: v for k, v in spec.items() if k != "type"})


def check_network(model) -> None:
    """A ``TypeError`` naming what ``model`` lacks of the contract (``fit`` calls it once)."""
    missing = [name for name in ("spec", "centers", "autoencoder", "embed", "soft_assign", "state_dict")
               if not hasattr(model, name)]
    if missing:
        raise TypeError(f"{type(model).__name__} does not satisfy the model contract: no {', '.join(missing)}")
    if model.spec.get("type") not in NETWORKS:
        raise TypeError(f"{type(model).__name__}'s spec type {model.spec.get('type')!r} is not registered "
                        "(use models.register_network)")


# Every module of this package holds networks registered by the decorator above: importing it
# registers them, so adding a network is adding its module.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
