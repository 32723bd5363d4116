"""Saving and loading fitted estimators without pickle: safetensors weights + a JSON manifest.

The manifest rebuilds the network (its ``spec``), the input scaler and the fitted attributes;
the weights file holds the model's tensors under ``model.``, for deep methods the pretrained
autoencoder under ``pretrained.`` (so a loaded model can seed another job), and for a network
without centres the fitted ``cluster_centers``. Only the model contract
(``models.networks``) is read: ``spec``, ``state_dict``, ``centers``.
"""
from __future__ import annotations

import json
import os
import platform
import zipfile
from pathlib import Path

import numpy as np
import safetensors
import sklearn
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .networks import build_network
from .training.device import resolve_device
from .k_estimation import KSelection
from .methods import get_method
from .preprocessing import Scaler

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"


def dump(est) -> tuple[bytes, dict]:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in est.model_.state_dict().items()}
    for k, v in (est.pretrained_state_ or {}).items():
        tensors[f"pretrained.{k}"] = v.detach().cpu().contiguous()
    if est.model_.centers is None:
        tensors["cluster_centers"] = torch.from_numpy(np.ascontiguousarray(est.cluster_centers_))
    manifest = {
        "format_version": FORMAT_VERSION,
        "method": est.method,
        "n_clusters": int(getattr(est, "n_clusters_", est.n_clusters)),
        "params": est.params_,
        "random_state": est.random_state if isinstance(est.random_state, (int, type(None))) else None,
        "scaling": est.scaling,
        "architecture": est.model_.spec,
        "scaler": est.scaler_.to_manifest(),
        "sample_shape": list(est.sample_shape_),
        "centers_space": est.centers_space_,
        "history": est.history_,
        "health": getattr(est, "health_", None),
        "warnings": getattr(est, "warnings_", []),
        "k_selection": (est.k_selection_.to_dict() if getattr(est, "k_selection_", None) is not None else None),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "safetensors": safetensors.__version__,
        },
    }
    return save_tensors(tensors), manifest


def restore(cls, weights: bytes, manifest: dict, device: str = "auto"):
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"unsupported model format_version {version!r}; this library reads {FORMAT_VERSION}")
    tensors = load_tensors(weights)
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    pretrained = {k[len("pretrained."):]: v for k, v in tensors.items() if k.startswith("pretrained.")}
    get_method(manifest["method"])  # KeyError naming the known methods
    # Models saved before network types were registered have no type: they are all "cluster".
    model = build_network({"type": "cluster", **manifest["architecture"]})
    model.load_state_dict(model_state)
    centers = (model.centers.detach().numpy().copy() if model.centers is not None
               else tensors["cluster_centers"].numpy())
    device = resolve_device(device)
    est = cls(manifest["method"], manifest["n_clusters"], random_state=manifest["random_state"],
              scaling=manifest["scaling"], **manifest["params"])
    est._set_fitted(model.to(device), Scaler.from_manifest(manifest["scaler"]), manifest["centers_space"],
                    manifest["sample_shape"], device, manifest["params"], manifest["history"],
                    pretrained or None, centers)
    est.n_clusters_ = int(manifest["n_clusters"])
    est.health_ = manifest.get("health")
    est.warnings_ = list(manifest.get("warnings") or [])
    chosen = manifest.get("k_selection")
    est.k_selection_ = KSelection.from_dict(chosen) if chosen else None
    return est


def save_dir(est, path) -> None:
    """Write both files into ``path`` (created if needed), each atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights, manifest = dump(est)
    _write_atomic(path / WEIGHTS_FILE, weights)
    _write_atomic(path / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())


def load_dir(cls, path, device: str = "auto"):
    """From a directory ``save_dir`` wrote, or from the service's download (a zip of the same two
    files, ``GET /v1/models/{id}/download``), so a user need not unzip it first."""
    path = Path(path)
    if path.is_file():
        return _load_zip(cls, path, device)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model directory or zip")
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    return restore(cls, (path / WEIGHTS_FILE).read_bytes(), manifest, device)


def _load_zip(cls, path: Path, device: str):
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is neither a model directory nor a zip of {WEIGHTS_FILE} and {MANIFEST_FILE}")
    with zipfile.ZipFile(path) as bundle:
        names = set(bundle.namelist())
        missing = [name for name in (WEIGHTS_FILE, MANIFEST_FILE) if name not in names]
        if missing:
            raise ValueError(f"{path} lacks {' and '.join(missing)}: a model zip holds {WEIGHTS_FILE} and "
                             f"{MANIFEST_FILE} (what the service's download and DeepClusterer.save write)")
        manifest = json.loads(bundle.read(MANIFEST_FILE))
        return restore(cls, bundle.read(WEIGHTS_FILE), manifest, device)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
