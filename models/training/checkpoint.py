"""Checkpoints as plain tensors and primitives: saved with torch.save, loaded with weights_only=True."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` atomically (temp file + rename), so a crash never leaves half a checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)
