"""The canonical on-disk array: a float32 C-order ``.npy`` that ``np.load(mmap_mode="r")`` opens.

``NpyWriter`` appends row blocks without knowing the row count up front (CSV and Parquet are
read as a stream), then writes the real shape into a header it reserved at the start.
``read_header`` inspects an uploaded ``.npy`` without trusting it: no pickle, no object dtype,
a shape whose size is computable (no negative dimension, nothing past int64), and the byte count
must match the header (a truncated file is refused, not half read).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Version 1.0 header: magic (6) + version (2) + length (2) + dict padded with spaces + "\n".
# 128 bytes hold any shape we can store and keep the data 64-byte aligned, as numpy wants.
_HEADER_BYTES = 128
_MAGIC = b"\x93NUMPY\x01\x00"
_INT64_MAX = 2**63 - 1


class NpyWriter:
    """Write a float32 array of shape (rows, *sample_shape) block by block, atomically enough:
    the file is only complete (and loadable) once ``close`` has written the header."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = open(self.path, "wb")
        self._file.write(b"\0" * _HEADER_BYTES)
        self.rows = 0
        self.sample_shape: tuple[int, ...] | None = None

    def append(self, block: np.ndarray) -> None:
        if self.sample_shape is None:
            self.sample_shape = tuple(block.shape[1:])
        elif tuple(block.shape[1:]) != self.sample_shape:
            raise ValueError(f"block of shape {block.shape} after rows of shape {self.sample_shape}")
        self._file.write(np.ascontiguousarray(block, dtype="<f4").data)  # the buffer itself, no bytes copy
        self.rows += len(block)

    def close(self, durable: bool = True) -> tuple[int, ...]:
        """Write the header; ``durable`` also flushes the file to disk (not needed for scratch files)."""
        shape = (self.rows, *(self.sample_shape or ()))
        header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape!r}, }}"
        pad = _HEADER_BYTES - len(_MAGIC) - 2 - len(header) - 1
        if pad < 0:
            raise ValueError(f"shape {shape} does not fit the reserved .npy header")
        text = (header + " " * pad + "\n").encode("latin1")
        self._file.seek(0)
        self._file.write(_MAGIC + len(text).to_bytes(2, "little") + text)
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())
        self._file.close()
        return shape

    def abort(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # Python integers: a hostile shape cannot wrap around

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


class BadNpy(ValueError):
    """Why an uploaded .npy cannot be used; ``code`` is the API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def read_header(path: Path) -> NpyHeader:
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise BadNpy("invalid_file", f".npy format version {version} is not supported; save with numpy.save")
        except BadNpy:
            raise
        except (ValueError, OSError, SyntaxError, EOFError) as exc:
            raise BadNpy("invalid_file", f"not a readable .npy file ({exc})") from None
        header = NpyHeader(tuple(int(s) for s in shape), dtype, bool(fortran), f.tell())
    if dtype.hasobject:
        raise BadNpy("pickled_data", "the .npy holds Python objects, which would need pickle to load; "
                                     "save a numeric array instead")
    if any(d < 0 for d in header.shape) or header.nbytes > _INT64_MAX:
        raise BadNpy("invalid_file", f"the .npy header announces shape {_shape_text(header.shape)}, which no "
                                     "array can have (a negative dimension, or more bytes than int64 counts)")
    size = os.path.getsize(path)
    if size != header.data_offset + header.nbytes:
        raise BadNpy("truncated_file", f"the .npy header announces {header.nbytes} bytes of data but the file "
                                       f"holds {size - header.data_offset}: it is truncated or corrupt")
    return header


def _shape_text(shape: tuple[int, ...]) -> str:
    text = str(list(shape))
    return text if len(text) <= 200 else text[:200] + "...]"


def rewrite_shape(path: Path, header: NpyHeader, shape: tuple[int, ...]) -> bool:
    """Give the file at ``path`` a new shape of the same size in place, when the new header fits in
    the space of the old one (numpy pads headers to 64 bytes, so adding a dimension usually does).
    Returns False, changing nothing, when it does not fit."""
    assert math.prod(shape) == header.size
    descr = np.lib.format.dtype_to_descr(header.dtype)
    text = f"{{'descr': {descr!r}, 'fortran_order': {header.fortran_order}, 'shape': {tuple(shape)!r}, }}"
    with open(path, "rb") as f:
        prefix = f.read(8)  # magic + version
    length_bytes = 2 if prefix[6] == 1 else 4
    pad = header.data_offset - 8 - length_bytes - len(text) - 1
    if pad < 0:
        return False
    block = (text + " " * pad + "\n").encode("latin1")
    with open(path, "r+b") as f:
        f.write(prefix + len(block).to_bytes(length_bytes, "little") + block)
    return True


def open_array(path: Path) -> np.ndarray:
    """Memory-map a checked .npy (an empty one cannot be mapped, so it is read)."""
    header = read_header(path)
    if header.nbytes == 0:
        return np.load(path, allow_pickle=False)
    return np.load(path, mmap_mode="r", allow_pickle=False)
