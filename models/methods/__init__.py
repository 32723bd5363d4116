"""The method registry: one module per method, each registered by name."""
from __future__ import annotations

from dataclasses import dataclass, field

from .base import ClusteringMethod

_REGISTRY: dict[str, type[ClusteringMethod]] = {}


def register(cls: type[ClusteringMethod]) -> type[ClusteringMethod]:
    _REGISTRY[cls.name] = cls
    return cls


@dataclass(frozen=True)
class MethodInfo:
    """A method as the outside sees it: name, accepted input kinds, params schema and defaults."""

    name: str
    summary: str
    input_kinds: tuple[str, ...]
    params_schema: dict = field(repr=False)
    defaults: dict = field(repr=False)
    cls: type[ClusteringMethod] = field(repr=False)

    def validate(self, params: dict | None) -> dict:
        return self.cls.validate(params)


def _info(cls: type[ClusteringMethod]) -> MethodInfo:
    return MethodInfo(cls.name, cls.summary, cls.input_kinds, cls.params_model.model_json_schema(),
                      cls.params_model().model_dump(), cls)


def get_method(name: str) -> MethodInfo:
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(sorted(_REGISTRY))}")
    return _info(_REGISTRY[name])


def list_methods() -> list[MethodInfo]:
    return [_info(cls) for _, cls in sorted(_REGISTRY.items())]


# Importing a method module registers it.
from . import cdc, dccf, dec, idec, kmeans  # noqa: E402,F401
