"""deepclust: deep clustering as a service, and the library behind it.

The one public name. What a notebook needs is here, loaded on first use so that
``from deepclust import Client`` stays as light as the client itself (httpx and numpy):
the library names (``DeepClusterer``, ``sweep_k``, ``list_methods``) import torch only
when they are touched, and only where the ``library`` extra is installed.

The code lives in the repository's ``app/``, ``models/`` and ``worker/`` folders, installed
as ``deepclust.app``, ``deepclust.models`` and ``deepclust.worker`` (see pyproject.toml).
"""
from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepclust")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"

# name -> the module that defines it; resolved by __getattr__ on first access.
_CLIENT = "deepclust.app.client"
_LIBRARY = "deepclust.models"
_PUBLIC = {
    "Client": _CLIENT,
    "Job": _CLIENT,
    "Sweep": _CLIENT,
    "Prediction": _CLIENT,
    "BatchPrediction": _CLIENT,
    "DeepclustError": _CLIENT,
    "BadRequest": _CLIENT,
    "Unauthorized": _CLIENT,
    "NotFound": _CLIENT,
    "Conflict": _CLIENT,
    "TooLarge": _CLIENT,
    "UnsupportedMediaType": _CLIENT,
    "InvalidRequest": _CLIENT,
    "ServiceUnavailable": _CLIENT,
    "ServerError": _CLIENT,
    "ConnectionFailed": _CLIENT,
    "JobFailed": _CLIENT,
    "DeepClusterer": _LIBRARY,
    "Callback": _LIBRARY,
    "list_methods": _LIBRARY,
    "get_method": _LIBRARY,
    "sweep_k": _LIBRARY,
    "InvalidParams": _LIBRARY,
    "LossNotFinite": _LIBRARY,
    "TrainingCancelled": _LIBRARY,
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'deepclust' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
