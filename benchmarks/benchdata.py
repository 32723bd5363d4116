"""Where the benchmarks find their data, and a check that it is the data they were measured on.

Every benchmark script reads its files through this module, so there is one rule for where they
are and one check of what they are:

- the folder is ``--data-dir`` where a script takes it, else ``$DEEPCLUST_DATASETS``, else
  ``../shared/datasets`` beside the repository (``default_data_dir``);
- a file the benchmarks know (``KNOWN``) must have the size and sha256 that
  ``benchmarks/DATASETS.md`` lists; a missing or different file stops the script with a message
  that names the folder, the file's expected size and sha256, and where it comes from. A figure
  measured on other bytes would silently stop being comparable.

Hashing the 29 MB CIFAR file takes a fraction of a second, but scripts load their data often
(``table.py`` once per cell), so a verified digest is cached in ``benchmarks/.cache/sha256.json``
by path, size and modification time; a changed file is hashed again.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
ENV = "DEEPCLUST_DATASETS"
CACHE = ROOT / ".cache" / "sha256.json"
DOC = "benchmarks/DATASETS.md"


@dataclass(frozen=True)
class Known:
    """A file the benchmarks read: its size, sha256 and its section in DATASETS.md."""

    size: int
    sha256: str
    anchor: str


KNOWN: dict[str, Known] = {
    "usps.npz": Known(2_407_366, "95dacb4e931e774c513d621cbe2674f909113f80bdc90b4132e01e4cc19369b5", "uspsnpz"),
    "mnist.npz": Known(11_507_644, "18436a74edd9c9851b6d895144e4555ca424eade298a9bf69330479b2b5db032", "mnistnpz"),
    "cifar10_jpeg_test.npz": Known(
        28_786_250, "edc19aabb2db973d3675f9d88dd7241c7a310508045464ba9851712d35ac671c", "cifar10_jpeg_testnpz"),
    "mnist_test_png_1k.zip": Known(
        401_172, "579b9843c20ad000641f0e0c7ff8ad53994e0255993df026185b88cfbec38a11", "mnist_test_png_1kzip"),
    "cifar10_test_jpg_1k.zip": Known(
        1_048_053, "4f9c5ee467c7e2456f9c7b54a69707188c2df5e83e6da8cce704fbe9b13a1633", "cifar10_test_jpg_1kzip"),
}

# Datasets cut from a known file when the folder has no file of their own: name -> (file, split).
DERIVED: dict[str, tuple[str, int]] = {"mnist_test": ("mnist.npz", 1)}


class DatasetError(Exception):
    """A benchmark file is missing or is not the file the benchmarks were measured on."""


def default_data_dir() -> Path:
    """``$DEEPCLUST_DATASETS``, else ``../shared/datasets`` beside the repository."""
    return Path(os.environ.get(ENV) or REPO.parent / "shared" / "datasets")


def add_data_dir_argument(parser) -> None:
    """The ``--data-dir`` option every benchmark script that reads data takes."""
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(),
                        help=f"folder of the benchmark datasets (default: ${ENV}, else ../shared/datasets "
                             f"beside the repository; {DOC} lists the files)")


def _where(data_dir: Path) -> str:
    return f"{data_dir} (--data-dir, else ${ENV}, else ../shared/datasets beside the repository)"


def _describe(name: str, known: Known) -> str:
    return (f"{name}: {known.size:,} bytes, sha256 {known.sha256}; {DOC}#{known.anchor} says where it comes "
            f"from and how it was made")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_sha256(path: Path, cache: Path) -> str:
    """The file's sha256, from the cache when its path, size and mtime are unchanged."""
    stat = path.stat()
    key, stamp = str(path.resolve()), [stat.st_size, stat.st_mtime_ns]
    try:
        entries = json.loads(cache.read_text())
    except (OSError, ValueError):
        entries = {}
    entry = entries.get(key) if isinstance(entries, dict) else None
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = _sha256(path)
    entries = entries if isinstance(entries, dict) else {}
    entries[key] = {"stamp": stamp, "sha256": digest}
    try:  # a read-only checkout only loses the cache
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
        os.replace(tmp, cache)  # atomic: parallel workers never read half a file
    except OSError:
        pass
    return digest


def dataset_path(file: str, data_dir: Path | str | None = None, *, cache: Path = CACHE) -> Path:
    """The path of ``file`` in the datasets folder, checked.

    A file in ``KNOWN`` must be there with its listed sha256 (``DatasetError`` saying what to put
    where otherwise); any other file must exist and is not checked (a dataset of your own).
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    path = data_dir / file
    known = KNOWN.get(file)
    if not path.is_file():
        what = _describe(file, known) if known else f"{file} (not one of the benchmark files {DOC} lists)"
        raise DatasetError(f"missing benchmark data: no {file} in {_where(data_dir)}. Put the file there. "
                           f"Expected: {what}.")
    if known is not None:
        size = path.stat().st_size
        digest = _cached_sha256(path, cache) if size == known.size else None
        if digest != known.sha256:
            found = f"sha256 {digest}" if digest else f"{size:,} bytes"
            raise DatasetError(f"{path} is not the file the benchmarks were measured on: {found}. Replace it with "
                               f"{_describe(file, known)}.")
    return path


def has(file: str, data_dir: Path | str | None = None) -> bool:
    """Whether the folder has ``file`` (unchecked; ``dataset_path`` checks it when it is read)."""
    return ((Path(data_dir) if data_dir is not None else default_data_dir()) / file).is_file()


def check(name: str, data_dir: Path | str | None = None, *, cache: Path = CACHE) -> None:
    """Raise ``DatasetError`` unless the files dataset ``name`` is read from are there and right:
    a run that would stop on a missing file hours in stops before it starts instead."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if name in DERIVED and not (data_dir / f"{name}.npz").is_file():
        name = DERIVED[name][0].removesuffix(".npz")
    dataset_path(f"{name}.npz", data_dir, cache=cache)


def load_npz(name: str, data_dir: Path | str | None = None, *, cache: Path = CACHE) -> dict[str, np.ndarray]:
    """Every array of ``<name>.npz`` in the datasets folder, checked (``dataset_path``).

    ``mnist_test``, when the folder has no ``mnist_test.npz``, is the test split of ``mnist.npz``
    (``split == 1``, 10,000 images), so it needs no file of its own.
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    file = f"{name}.npz"
    if name in DERIVED and not (data_dir / file).is_file():
        parent, split = DERIVED[name]
        arrays = load_npz(parent.removesuffix(".npz"), data_dir, cache=cache)
        keep = arrays["split"] == split
        return {k: (v[keep] if v.ndim and len(v) == len(keep) and k != "shape" else v) for k, v in arrays.items()}
    with np.load(dataset_path(file, data_dir, cache=cache), allow_pickle=False) as d:
        return {k: d[k] for k in d.files}
