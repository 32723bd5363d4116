"""An uploaded file, read by the reader its format names (formats.py): the one way in for upload
(``read_dataset``) and predict (``read_rows``).

The reader module is imported when a file of its format comes, not before: a CSV upload never
loads the archive or image modules.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepclust.app.core.npyfile import BadNpy, NpyHeader, open_array, read_header
from deepclust.app.core.settings import Settings
from deepclust.app.datasets.ingest import formats
from deepclust.app.datasets.ingest.formats import ARCHIVE, IMAGE_OPTIONS, LABEL_COLUMN, InputFormat
from deepclust.app.errors import CODES, IMAGE_OPTIONS_UNSUPPORTED, LABEL_COLUMN_UNSUPPORTED, UNSUPPORTED_FORMAT

Staging = Callable[[str], AbstractContextManager[Path]]


@dataclass(frozen=True)
class Canonical:
    """What a reader made of an upload: the canonical array's shape, and labels if it held them."""

    shape: tuple[int, ...]
    source_dtype: str
    labels: np.ndarray | None  # int64 class codes 0..n_classes-1
    n_classes: int | None

    @property
    def kind(self) -> str:
        return "features" if len(self.shape) == 2 else "images"

    @property
    def sample_shape(self) -> list[int]:
        return list(self.shape[1:])


@dataclass(frozen=True)
class Reading:
    """What a reader needs besides the file: the form's text fields, the server's limits, where
    scratch files go and, for predict, how the model's training images were made."""

    staging: Staging
    settings: Settings
    fields: Mapping[str, str] = field(default_factory=dict)
    filename: str = ""  # the upload's name, as sent
    size: int = 0  # the upload's size in bytes
    image_options: Callable[[], Any] | None = None  # predict: the model's ImageOptions (422 if it takes no images)

    @property
    def label_column(self) -> str | None:
        return self.fields.get(LABEL_COLUMN) or None


def _cannot_tell(filename: str) -> Exception:
    archives = formats.ARCHIVE_SUFFIXES
    return UNSUPPORTED_FORMAT(f"Cannot tell the format of {filename!r}: use {formats.DATA_SUFFIXES}, or an image "
                              f"archive {', '.join(archives[:-1])} or {archives[-1]}.", filename=filename)


def detect(filename: str, path: Path, *, dataset: bool) -> InputFormat:
    """The upload's format from its name, else its first bytes; 415 when neither tells, or (for a
    dataset, ``dataset=True``) when it is a format only predict takes (one image)."""
    with open(path, "rb") as f:
        fmt = formats.guess(filename, f.read(formats.MAGIC_BYTES))
    if fmt is None:
        raise _cannot_tell(filename)
    if dataset and not fmt.dataset:
        archives = formats.ARCHIVE_SUFFIXES
        raise UNSUPPORTED_FORMAT(f"{filename!r} is one image; a dataset of images is an archive "
                                 f"({', '.join(archives[:-1])} or {archives[-1]}) of them, e.g. one folder per class.",
                                 {"filename": filename})
    return fmt


def check_options(fmt: InputFormat, fields: Mapping[str, str]) -> None:
    """422 for a form option the format does not take (image options are for archives, a label
    column is not for an archive; .npy/.npz refuse a label column in their reader)."""
    if any(fields.get(name) for name in IMAGE_OPTIONS) and not fmt.applies(IMAGE_OPTIONS[0]):
        archives = [s for f in formats.of_kind(ARCHIVE) for s in f.suffixes[:1]]
        raise IMAGE_OPTIONS_UNSUPPORTED(f"image_size and color apply to image archives ({', '.join(archives)}), "
                                        f"not to {fmt.name}.", format=fmt.name)
    if fmt.kind == ARCHIVE and fields.get(LABEL_COLUMN):
        raise LABEL_COLUMN_UNSUPPORTED(f"label_column applies to {formats.joined(formats.LABEL_COLUMN_FORMATS, 'and')}; "
                                       "an archive takes its labels from a labels.csv member, its folder names, or "
                                       "a 'labels' file.", label_column=fields[LABEL_COLUMN])


def reader(fmt: InputFormat):
    """The module that reads ``fmt``, imported now."""
    return importlib.import_module(fmt.reader)


def read_dataset(src: Path, fmt: InputFormat, out: Path, reading: Reading):
    """A dataset upload as the canonical ``.npy`` at ``out``; its ``Canonical`` (shape, labels)."""
    check_options(fmt, reading.fields)
    return reader(fmt).read_dataset(src, fmt, out, reading)


def read_rows(src: Path, fmt: InputFormat, out: Path, reading: Reading) -> np.ndarray:
    """Rows to predict, as float32 samples (read from ``out``, where they are written)."""
    return reader(fmt).read_rows(src, fmt, out, reading)


# -- .npy files, checked before they are read (uploads and labels files) ----------------------------

def npy_header(path: Path, what: str = "file") -> NpyHeader:
    """A .npy's header, checked (no pickled objects, the data all there); 422 otherwise."""
    try:
        return read_header(path)
    except BadNpy as exc:
        raise CODES[exc.code](f"The {what} is refused: {exc}") from None


def checked_npy(path: Path, what: str = "file") -> np.ndarray:
    try:
        return open_array(path)
    except BadNpy as exc:
        raise CODES[exc.code](f"The {what} is refused: {exc}") from None
