"""The method registry: one module per method, each registered by name."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field

from .base import ClusteringMethod, ImageMethod

_REGISTRY: dict[str, type[ClusteringMethod]] = {}


def register(cls: type[ClusteringMethod]) -> type[ClusteringMethod]:
    """Class decorator: add a method to the registry (its tiny preset must be valid params)."""
    cls.parse(cls.tiny_preset)
    _REGISTRY[cls.name] = cls
    return cls


@dataclass(frozen=True)
class MethodInfo:
    """A method as the outside sees it: name, accepted input kinds, params schema and defaults,
    and ``tiny_preset``: params that train it in about a second on small data (for tests)."""

    name: str
    summary: str
    input_kinds: tuple[str, ...]
    params_schema: dict = field(repr=False)
    defaults: dict = field(repr=False)
    cls: type[ClusteringMethod] = field(repr=False)
    tiny_preset: dict = field(repr=False, default_factory=dict)

    def validate(self, params: dict | None) -> dict:
        return self.cls.validate(params)

    def check_input(self, sample_shape, params: dict | None = None) -> None:
        """``ValueError`` naming what fits when this method cannot train on samples of
        ``sample_shape`` (e.g. an image size its network cannot take); see ``check_sample_shape``."""
        check_sample_shape(self.name, sample_shape, params)


def _info(cls: type[ClusteringMethod]) -> MethodInfo:
    return MethodInfo(cls.name, cls.summary, cls.input_kinds, cls.params_model.model_json_schema(),
                      cls.params_model().model_dump(), cls, dict(cls.tiny_preset))


def get_method(name: str) -> MethodInfo:
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(sorted(_REGISTRY))}")
    return _info(_REGISTRY[name])


def list_methods() -> list[MethodInfo]:
    return [_info(cls) for _, cls in sorted(_REGISTRY.items())]


def param_names() -> set[str]:
    """Every param name of every registered method."""
    return {name for cls in _REGISTRY.values() for name in cls.params_model.model_fields}


def tiny_preset(name: str) -> dict:
    """Params that train method ``name`` in about a second on a few hundred small samples."""
    return get_method(name).tiny_preset


def check_sample_shape(method: str, sample_shape, params: dict | None = None) -> None:
    """``ValueError`` (a 422 for the service) if ``method`` cannot train on samples of
    ``sample_shape`` — ``[D]`` for a feature matrix, ``[C, H, W]`` for images: the wrong input
    kind, or an image size its network cannot take (the message names the sizes it can)."""
    info = get_method(method)
    shape = tuple(int(s) for s in sample_shape)
    kind = "images" if len(shape) > 1 else "features"
    if kind not in info.input_kinds:
        raise ValueError(f"method '{method}' does not accept {kind}; it takes {', '.join(info.input_kinds)}")
    if issubclass(info.cls, ImageMethod):
        info.cls.check_sample_shape(shape, params)


# Every module of this package but ``base`` (and private ``_*`` ones) is a method: importing it
# registers it, so adding a method is adding its module.
for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
