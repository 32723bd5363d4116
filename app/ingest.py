"""Uploaded files in, canonical datasets out.

Every feature format is read as a stream of row blocks (never the whole file in memory), each
block checked (numeric, finite, consistent width) and appended to one float32 ``.npy`` that the
worker memory-maps. Labels, from a file, a column or the ``y`` array of an ``.npz``, become int64
class codes; they only ever feed evaluation metrics. Every refusal is an ``ApiError`` with the
status and code API.md gives it.
"""
from __future__ import annotations

import csv
import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.errors import ApiError, invalid
from app.npyfile import BadNpy, NpyWriter, open_array

FEATURE_FORMATS = ("npy", "npz", "csv", "tsv", "parquet")
_SUFFIXES = {".npy": "npy", ".npz": "npz", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
_BLOCK_BYTES = 8 << 20

Staging = Callable[[str], AbstractContextManager[Path]]
Blocks = Iterator[tuple[np.ndarray, np.ndarray | None]]  # rows, and their labels when a column holds them


@dataclass(frozen=True)
class Canonical:
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


def unsupported(message: str, **details) -> ApiError:
    return ApiError(415, "unsupported_format", message, details)


def detect_format(filename: str, path: Path) -> str:
    """The format from the file name, or from the first bytes when the name says nothing."""
    name = filename.lower()
    if name.endswith(_ARCHIVE_SUFFIXES) and not name.endswith(".npz"):
        raise unsupported("Image archives are not accepted yet (they come with the image methods); "
                          "upload a feature matrix as .npy, .npz, .csv, .tsv or .parquet.", filename=filename)
    suffix = Path(name).suffix
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    raise unsupported(f"Cannot tell the format of {filename!r}: use .npy, .npz, .csv, .tsv or .parquet.",
                      filename=filename)


def canonicalize(src: Path, fmt: str, out: Path, *, staging: Staging, label_column: str | None = None,
                 max_expanded_bytes: int) -> Canonical:
    """Convert the upload ``src`` of format ``fmt`` into the float32 ``.npy`` at ``out``."""
    if label_column is not None and fmt not in ("csv", "tsv", "parquet"):
        raise invalid("label_column_unsupported", f"label_column applies to csv, tsv and parquet, not {fmt}; "
                      "upload the labels as a separate 'labels' file", label_column=label_column)
    with ExitStack() as stack:
        npz_labels = None
        if fmt == "npz":
            src, npz_labels = _unpack_npz(src, stack, staging, max_expanded_bytes)
            fmt = "npy"
        if fmt == "npy":
            source_dtype, blocks = _npy_blocks(src)
        elif fmt == "parquet":
            source_dtype, blocks = _parquet_blocks(src, label_column)
        else:
            source_dtype, blocks = "float64", _csv_blocks(src, "\t" if fmt == "tsv" else ",", label_column)
        shape, column_labels = _write_blocks(blocks, out)
    raw_labels = npz_labels if npz_labels is not None else column_labels
    codes, n_classes = (None, None) if raw_labels is None else label_codes(raw_labels, shape[0])
    return Canonical(shape, source_dtype, codes, n_classes)


def _write_blocks(blocks: Blocks, out: Path) -> tuple[tuple[int, ...], np.ndarray | None]:
    writer = NpyWriter(out)
    labels: list[np.ndarray] = []
    try:
        for x, y in blocks:
            with np.errstate(all="ignore"):  # overflow to inf is reported below, not warned about
                x32 = x.astype(np.float32)
            finite = np.isfinite(x32)
            if not finite.all():
                row, col = (int(i) for i in np.argwhere(~finite)[0][:2])
                raise invalid("non_finite", f"Row {writer.rows + row}, column {col} is NaN, infinite, empty or "
                              "too large for float32; every value must be a finite number.",
                              row=writer.rows + row, column=col)
            writer.append(x32)
            if y is not None:
                labels.append(y)
        shape = writer.close()
    except BaseException:
        writer.abort()
        raise
    if shape[0] == 0 or 0 in shape:
        raise invalid("empty_data", "The file holds no samples (or samples with no features).", shape=list(shape))
    if shape[0] < 2:
        raise invalid("too_few_samples", "Clustering needs at least 2 samples.", n_samples=shape[0])
    return shape, (np.concatenate(labels) if labels else None)


# -- .npy / .npz -------------------------------------------------------------------------------

def _checked_npy(path: Path, what: str = "file") -> np.ndarray:
    try:
        return open_array(path)
    except BadNpy as exc:
        raise invalid(exc.code, f"The {what} is refused: {exc}") from None


def _npy_blocks(path: Path) -> tuple[str, Blocks]:
    arr = _checked_npy(path)
    if arr.dtype.kind not in "biuf":
        raise invalid("non_numeric", f"The array has dtype {arr.dtype}; only numbers (bool, int, float) are "
                      "accepted.", dtype=str(arr.dtype))
    if arr.ndim < 2:
        raise invalid("one_dimensional", f"The array has shape {list(arr.shape)}; upload a 2-D matrix "
                      "(samples x features), or images as (N, H, W) / (N, C, H, W).", shape=list(arr.shape))
    if arr.ndim > 4:
        raise invalid("too_many_dimensions", f"The array has shape {list(arr.shape)}; at most 4 dimensions "
                      "(N, C, H, W) are understood.", shape=list(arr.shape))
    if arr.ndim == 3:  # (N, H, W) grayscale images
        arr = arr.reshape(arr.shape[0], 1, *arr.shape[1:])
    rows = max(1, _BLOCK_BYTES // max(1, arr[:1].nbytes))
    return arr.dtype.name, ((arr[i:i + rows], None) for i in range(0, len(arr), rows))


def _unpack_npz(path: Path, stack: ExitStack, staging: Staging, max_expanded: int) -> tuple[Path, np.ndarray | None]:
    """Extract ``x`` (to a staging file, streamed) and load ``y``; a zip bomb stops at ``max_expanded``."""
    try:
        zf = stack.enter_context(zipfile.ZipFile(path))
        members = {info.filename: info for info in zf.infolist()}
        if "x.npy" not in members:
            raise invalid("missing_array", "The .npz has no array named 'x' (save it with numpy.savez(f, x=X, y=y)).",
                          arrays=sorted(m.removesuffix(".npy") for m in members))
        wanted = [members["x.npy"]] + ([members["y.npy"]] if "y.npy" in members else [])
        declared = sum(info.file_size for info in wanted)
        if declared > max_expanded:
            raise too_large_expanded(declared, max_expanded)
        x_path = stack.enter_context(staging(".npy"))
        budget = _extract(zf, members["x.npy"], x_path, max_expanded)
        labels = None
        if "y.npy" in members:
            y_path = stack.enter_context(staging(".npy"))
            _extract(zf, members["y.npy"], y_path, budget)
            labels = np.asarray(_checked_npy(y_path, "array 'y'"))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise invalid("invalid_file", f"The .npz cannot be read: it is truncated or corrupt ({exc}).") from None
    return x_path, labels


def too_large_expanded(size: int, limit: int) -> ApiError:
    return ApiError(413, "too_large", f"The archive expands to more than {limit} bytes "
                    "(DEEPCLUST_MAX_EXPANDED_BYTES).", {"expanded_bytes": size, "limit": limit})


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: int) -> int:
    """Copy one member out, counting real bytes (the declared size can lie); returns what is left."""
    with zf.open(info) as src, open(dest, "wb") as out:
        while chunk := src.read(1 << 20):
            budget -= len(chunk)
            if budget < 0:
                raise too_large_expanded(info.file_size, budget + len(chunk))
            out.write(chunk)
    return budget


# -- .csv / .tsv -------------------------------------------------------------------------------

def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _first_row(path: Path, delimiter: str) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f, delimiter=delimiter), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise invalid("invalid_file", f"The file is not readable text ({exc}).") from None


def _label_index(label_column: str | None, header: list[str] | None, n_columns: int) -> int | None:
    if label_column is None:
        return None
    if header is not None and label_column in header:
        return header.index(label_column)
    if label_column.isdigit() and int(label_column) < n_columns:
        return int(label_column)
    raise invalid("unknown_label_column", f"label_column {label_column!r} is neither a header name nor a column "
                  f"index below {n_columns}.", label_column=label_column, columns=header or n_columns)


def _csv_blocks(path: Path, delimiter: str, label_column: str | None) -> Blocks:
    first = _first_row(path, delimiter)
    if not first:
        raise invalid("empty_data", "The file is empty.")
    fixed_index = int(label_column) if label_column is not None and label_column.isdigit() else None
    # A header is a first row with a non-empty cell that is not a number (the label cell aside).
    has_header = any(cell.strip() and not _is_number(cell) for i, cell in enumerate(first) if i != fixed_index)
    header = [c.strip() for c in first] if has_header else None
    label = _label_index(label_column, header, len(first))
    names = [f"c{i}" for i in range(len(first))]
    types = {name: (pa.string() if i == label else pa.float64()) for i, name in enumerate(names)}
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if has_header else 0,
                                           block_size=_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))
        for batch in reader:
            yield _split_columns(batch, label)
    except pa.ArrowInvalid as exc:
        raise _csv_error(exc) from None


def _csv_error(exc: Exception) -> ApiError:
    text = str(exc)
    if "Expected" in text and "columns" in text:
        return invalid("ragged_rows", f"Rows have different numbers of columns: {text}")
    if "conversion error" in text or "invalid value" in text.lower():
        return invalid("non_numeric", f"A cell is not a number: {text}")
    return invalid("invalid_file", f"The file cannot be parsed: {text}")


def _split_columns(batch: pa.RecordBatch, label: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Feature columns as one float64 block (nulls become NaN, refused later), and the label column."""
    features = [batch.column(i) for i in range(batch.num_columns) if i != label]
    if not features:
        raise invalid("empty_data", "There are no feature columns besides the label column.")
    x = np.column_stack([pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False) for col in features])
    y = None
    if label is not None:
        column = batch.column(label)
        if column.null_count:
            raise invalid("missing_labels", "The label column has empty cells; every sample needs a label.")
        y = column.to_numpy(zero_copy_only=False)
        if y.dtype == object:  # text labels
            y = y.astype(str)
    return x, y


# -- .parquet ----------------------------------------------------------------------------------

def _parquet_blocks(path: Path, label_column: str | None) -> tuple[str, Blocks]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise invalid("invalid_file", f"The Parquet file cannot be read: it is truncated or corrupt ({exc}).") from None
    schema = pf.schema_arrow
    label = _label_index(label_column, schema.names, len(schema.names))
    dtypes = []
    for i, field in enumerate(schema):
        if i == label:
            continue
        if not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_boolean(field.type)):
            raise invalid("non_numeric", f"Column {field.name!r} has type {field.type}; feature columns must be "
                          "numeric.", column=field.name, type=str(field.type))
        dtypes.append(np.dtype(field.type.to_pandas_dtype()))
    if not dtypes:
        raise invalid("empty_data", "There are no feature columns besides the label column.")
    rows = max(1, _BLOCK_BYTES // (8 * len(dtypes)))

    def blocks() -> Blocks:
        try:
            for batch in pf.iter_batches(batch_size=rows):
                yield _split_columns(batch, label)
        except (pa.ArrowException, OSError) as exc:
            raise invalid("invalid_file", f"The Parquet file cannot be read: {exc}") from None

    return np.result_type(*dtypes).name, blocks()


# -- labels ------------------------------------------------------------------------------------

def read_labels_file(path: Path, filename: str) -> np.ndarray:
    """Labels from a .npy vector or a text file with one label per line."""
    with open(path, "rb") as f:
        is_npy = f.read(6) == b"\x93NUMPY"
    if is_npy or filename.lower().endswith(".npy"):
        return np.asarray(_checked_npy(path, "labels file"))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise invalid("invalid_labels", "The labels file is neither a .npy nor UTF-8 text with one label per line.") from None
    lines = [line.strip() for line in io.StringIO(text).read().rstrip("\n").split("\n")]
    if lines == [""]:
        raise invalid("invalid_labels", "The labels file is empty.")
    if "" in lines:
        raise invalid("invalid_labels", f"Line {lines.index('') + 1} of the labels file is empty; one label per line.")
    return np.asarray(lines)


def label_codes(values: np.ndarray, n_samples: int) -> tuple[np.ndarray, int]:
    """Class codes 0..C-1 (the names or numbers only matter up to a permutation for the metrics)."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise invalid("invalid_labels", f"Labels must be a vector; got shape {list(values.shape)}.")
    if values.dtype.kind not in "biufUS":
        raise invalid("invalid_labels", f"Labels of dtype {values.dtype} are not understood; use integers or text.")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise invalid("invalid_labels", "Labels contain NaN or infinity.")
    if len(values) != n_samples:
        raise invalid("labels_length_mismatch", f"There are {len(values)} labels for {n_samples} samples.",
                      n_labels=len(values), n_samples=n_samples)
    classes, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), len(classes)
