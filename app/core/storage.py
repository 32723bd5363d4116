"""Artifact store: large bytes (canonical datasets, checkpoints) addressed by key.

The interface is deliberately small -- stage a file locally, publish it under a key atomically,
hand out a local path to read (memory-map) it, delete -- so an S3-compatible store can implement
it by uploading on publish and caching on read.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

STAGING = "tmp"


class ArtifactStore(Protocol):
    def staging_file(self, suffix: str = "") -> AbstractContextManager[Path]: ...
    def publish(self, local_file: Path, key: str) -> None: ...
    def local_path(self, key: str) -> Path: ...
    def exists(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def sweep_staging(self, older_than_seconds: float = ...) -> None: ...


class DirectoryStore:
    """Artifacts as files under one root directory; staging lives beside them, so publish is a rename."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        (self.root / STAGING).mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"artifact key escapes the store: {key!r}")
        return path

    @contextmanager
    def staging_file(self, suffix: str = "") -> Iterator[Path]:
        """A fresh scratch file that is removed on exit unless it was published meanwhile."""
        fd, tmp = tempfile.mkstemp(dir=self.root / STAGING, suffix=suffix)
        os.close(fd)
        path = Path(tmp)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def publish(self, local_file: Path, key: str) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local_file, dest)

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def sweep_staging(self, older_than_seconds: float = 24 * 3600) -> None:
        """Remove scratch files a crashed process left behind (live ones are younger)."""
        cutoff = time.time() - older_than_seconds
        for path in (self.root / STAGING).iterdir():
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)


# -- the key layout: every artifact's place in the store is named here and nowhere else -----------

def dataset_key(dataset_id: str, name: str) -> str:
    """A dataset's canonical arrays: ``x.npy`` (samples), ``y.npy`` (labels, when uploaded)."""
    return f"datasets/{dataset_id}/{name}"


def dataset_prefix(dataset_id: str) -> str:
    """Everything of a dataset (its arrays, the embeddings made from it): deleting it removes them."""
    return f"datasets/{dataset_id}"


def checkpoint_key(job_id: str) -> str:
    """A running job's last checkpoint; deleted once the job has ended."""
    return f"checkpoints/{job_id}.pt"


def log_key(job_id: str) -> str:
    """What the worker logged for a job (GET /v1/jobs/{id}/logs)."""
    return f"logs/{job_id}.log"


def plot_key(job_id: str, stem: str) -> str:
    """A plot drawn for a finished job, cached."""
    return f"{plots_prefix(job_id)}/{stem}"


def plots_prefix(job_id: str) -> str:
    """Everything drawn for a job: deleting the job removes it."""
    return f"plots/{job_id}"


# -- key layout of the encoders' files ------------------------------------------------------------

def encoder_key(encoder_id: str) -> str:
    """An uploaded ONNX encoder."""
    return f"encoders/{encoder_id}/model.onnx"


def encoder_prefix(encoder_id: str) -> str:
    return f"encoders/{encoder_id}"


def embeddings_key(dataset_id: str, encoder_id: str) -> str:
    """A dataset's images embedded by an encoder (N×D float32 .npy), kept beside the dataset so that
    deleting the dataset takes them too; reused by every job on the same dataset and encoder."""
    return dataset_key(dataset_id, f"embeddings/{encoder_id}.npy")


# -- key layout of the batch predictions' files -----------------------------------------------------

def prediction_prefix(prediction_id: str) -> str:
    """Everything of a batch prediction: deleting it removes them."""
    return f"predictions/{prediction_id}"


def prediction_key(prediction_id: str, name: str) -> str:
    """A succeeded prediction's arrays: ``labels.npy`` (int64) and ``probabilities.npy`` (float32, N×K)."""
    return f"{prediction_prefix(prediction_id)}/{name}"


def prediction_part_key(prediction_id: str, start: int) -> str:
    """The rows from ``start`` predicted by an attempt so far (a structured .npy); a retried attempt
    resumes after the last part, and the parts go once the whole arrays are published."""
    return f"{prediction_prefix(prediction_id)}/parts/{start:012d}.npy"


def store_for(data_dir: Path) -> DirectoryStore:
    return DirectoryStore(Path(data_dir) / "artifacts")
