"""Feature files (.npy, .npz, .csv, .tsv, .parquet) in, canonical datasets out.

The canonical dataset is one float32 C-order ``.npy`` that the worker memory-maps. A float32
little-endian ``.npy`` upload already is one: it is checked where it lies and published by
rename, never copied. Every other format is read as a stream of row blocks (``_BLOCK_BYTES``
each, never the whole file in memory), each block checked with vectorised numpy (numeric,
finite, consistent width) and appended to the canonical file. Labels, from a file, a column or
the ``y`` array of an ``.npz``, become int64 class codes; they only ever feed evaluation metrics.

What a file may cost is bounded before the work is done: the canonical size (rows x features x 4
bytes, from the header or metadata where the format has one, counted while streaming where it
has not) against ``max_expanded_bytes`` for every format, the column count of a table against
``max_columns`` from its first row or schema, a labels file's line count against the samples
before a line is kept. Every refusal is an ``ApiError`` with the status and code API.md gives it.
"""
from __future__ import annotations

import codecs
import csv
import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from deepclust.app.core.npyfile import NpyHeader, NpyWriter, open_array, rewrite_shape
from deepclust.app.datasets.ingest.formats import LABEL_COLUMN_FORMATS, InputFormat, joined
from deepclust.app.datasets.ingest.labels import label_codes
from deepclust.app.datasets.ingest.reading import Canonical, Reading, Staging, checked_npy, npy_header
from deepclust.app.datasets.ingest.zipcount import NotAZip, TooManyMembers, check_members
from deepclust.app.errors import (
    EMPTY_DATA,
    INVALID_FILE,
    LABEL_COLUMN_UNSUPPORTED,
    MISSING_ARRAY,
    MISSING_LABELS,
    NON_FINITE,
    NON_NUMERIC,
    ONE_DIMENSIONAL,
    RAGGED_ROWS,
    TOO_FEW_SAMPLES,
    TOO_LARGE,
    TOO_MANY_COLUMNS,
    TOO_MANY_DIMENSIONS,
    TOO_MANY_MEMBERS,
    TRUNCATED_FILE,
    UNKNOWN_LABEL_COLUMN,
    UNSUPPORTED_FORMAT,
    ApiError,
)

FEATURE_FORMATS = ("npy", "npz", "csv", "tsv", "parquet")
_BLOCK_BYTES = 8 << 20
# A table wider than this is refused from its first row or schema, before anything is buffered:
# the readers keep state per column (a 2-row CSV of 2M columns took the server past 16 GB).
MAX_COLUMNS = 16_384
# Parquet metadata is parsed whole; a footer this large means tens of thousands of column chunks.
_MAX_PARQUET_FOOTER = 32 << 20
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}  # what numpy.savez / savez_compressed write
# An .npz holds a few arrays (x, y); its member count is read from the zip's end records before
# zipfile lists the members (app/datasets/ingest/zipcount.py).
MAX_NPZ_MEMBERS = 1024
_CANONICAL = np.dtype("<f4")

Blocks = Iterator[tuple[np.ndarray, np.ndarray | None]]  # rows, and their labels when a column holds them


@dataclass(frozen=True)
class Limits:
    max_expanded_bytes: int
    max_columns: int = MAX_COLUMNS


def read_dataset(src: Path, fmt: InputFormat, out: Path, reading: Reading) -> Canonical:
    """A dataset upload (the reader of formats.py's npy, npz, csv, tsv, parquet)."""
    settings = reading.settings
    return canonicalize(src, fmt.name, out, staging=reading.staging, label_column=reading.label_column,
                        max_expanded_bytes=settings.max_expanded_bytes, max_columns=settings.max_columns)


def read_rows(src: Path, fmt: InputFormat, out: Path, reading: Reading) -> np.ndarray:
    """Rows to predict: one is enough, the label column (if named) dropped, no fsync."""
    settings = reading.settings
    canonicalize(src, fmt.name, out, staging=reading.staging, max_expanded_bytes=settings.max_expanded_bytes,
                 label_column=reading.label_column, min_samples=1, max_columns=settings.max_columns, durable=False)
    return open_array(out)


def canonicalize(src: Path, fmt: str, out: Path, *, staging: Staging, label_column: str | None = None,
                 max_expanded_bytes: int, min_samples: int = 2, max_columns: int = MAX_COLUMNS,
                 durable: bool = True) -> Canonical:
    """Convert the upload ``src`` of format ``fmt`` into the float32 ``.npy`` at ``out``.

    ``min_samples``: 2 for a dataset (clustering needs two), 1 for rows to predict.
    A ``src`` that already is canonical is moved to ``out`` (so ``src`` may be gone afterwards).
    ``durable=False`` skips the fsync, for a scratch result (predict) that no one keeps.
    """
    if label_column is not None and fmt not in LABEL_COLUMN_FORMATS:
        raise LABEL_COLUMN_UNSUPPORTED(f"label_column applies to {joined(LABEL_COLUMN_FORMATS, 'and')}, not {fmt}; "
                                       "upload the labels as a separate 'labels' file", label_column=label_column)
    limits = Limits(max_expanded_bytes, max_columns)
    column_labels = npz_labels = None
    with ExitStack() as stack:
        if fmt == "npz":
            src, npz_labels = _unpack_npz(src, stack, staging, max_expanded_bytes)
            fmt = "npy"
        if fmt == "npy":
            shape, source_dtype = _canonical_npy(src, out, limits, durable, min_samples)
        else:
            if fmt == "parquet":
                source_dtype, blocks = _parquet_blocks(src, label_column, limits)
            else:
                source_dtype, blocks = "float64", _csv_blocks(src, "\t" if fmt == "tsv" else ",", label_column, limits)
            shape, column_labels = _write_blocks(blocks, out, limits, durable)
            _check_samples(shape, min_samples)
    raw_labels = npz_labels if npz_labels is not None else column_labels
    codes, n_classes = (None, None) if raw_labels is None else label_codes(raw_labels, shape[0])
    return Canonical(shape, source_dtype, codes, n_classes)


def _check_samples(shape: tuple[int, ...], min_samples: int) -> None:
    if shape[0] == 0 or 0 in shape:
        raise EMPTY_DATA("The file holds no samples (or samples with no features).", shape=list(shape))
    if shape[0] < min_samples:
        raise TOO_FEW_SAMPLES(f"Clustering needs at least {min_samples} samples.", n_samples=shape[0])


def too_large_expanded(size: int, limit: int) -> ApiError:
    return TOO_LARGE(f"The data expands to more than {limit} bytes "
                     "(DEEPCLUST_MAX_EXPANDED_BYTES).", {"expanded_bytes": size, "limit": limit})


def _check_expanded(n_values: int, limits: Limits) -> None:
    """The canonical float32 size against the cap, before it is written."""
    if 4 * n_values > limits.max_expanded_bytes:
        raise too_large_expanded(4 * n_values, limits.max_expanded_bytes)


def too_many_columns(n_columns: int | str, limit: int) -> ApiError:
    return TOO_MANY_COLUMNS(f"The table has {n_columns} columns; at most {limit} are accepted "
                            "(DEEPCLUST_MAX_COLUMNS).", {"columns": n_columns, "limit": limit})


def _checked(x: np.ndarray, first_row: int) -> np.ndarray:
    """``x`` as float32 (values beyond float32 become inf), refused at its first non-finite value."""
    with np.errstate(all="ignore"):  # overflow to inf is reported below, not warned about
        x32 = x.astype(_CANONICAL, copy=False)
    finite = np.isfinite(x32)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0][:2])
        raise _non_finite(first_row + row, col)
    return x32


def _non_finite(row: int, col: int) -> ApiError:
    return NON_FINITE(f"Row {row}, column {col} is NaN, infinite, empty or too large for float32; "
                      "every value must be a finite number.", row=row, column=col)


def _write_blocks(blocks: Blocks, out: Path, limits: Limits, durable: bool) -> tuple[tuple[int, ...], np.ndarray | None]:
    writer = NpyWriter(out)
    labels: list[np.ndarray] = []
    try:
        for x, y in blocks:
            _check_expanded((writer.rows + len(x)) * int(np.prod(x.shape[1:])), limits)
            writer.append(_checked(x, writer.rows))
            if y is not None:
                labels.append(y)
        shape = writer.close(durable)
    except BaseException:
        writer.abort()
        raise
    return shape, (np.concatenate(labels) if labels else None)


# -- .npy / .npz -------------------------------------------------------------------------------

def _npy_blocks(path: Path, header: NpyHeader, shape: tuple[int, ...]) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of the array at ``path`` read as ``shape``, ~``_BLOCK_BYTES`` at a time into
    one reused buffer: read, not memory-mapped, so the file's pages never count as this process's
    memory. Each block is only valid until the next one is read."""
    if header.fortran_order:  # column-major: the rows are strided, let numpy gather them
        arr = np.load(path, mmap_mode="r", allow_pickle=False).reshape(shape)
        rows = max(1, _BLOCK_BYTES // max(1, arr[:1].nbytes))
        for start in range(0, len(arr), rows):
            yield start, arr[start:start + rows]
        return
    row_bytes = math.prod(shape[1:]) * header.dtype.itemsize
    rows = max(1, _BLOCK_BYTES // max(1, row_bytes))
    buffer = np.empty((min(rows, shape[0]), *shape[1:]), dtype=header.dtype)
    with open(path, "rb") as f:
        f.seek(header.data_offset)
        for start in range(0, shape[0], rows):
            block = buffer[:min(rows, shape[0] - start)]
            if f.readinto(memoryview(block).cast("B")) != block.nbytes:
                raise TRUNCATED_FILE("The file ended before the data its header announces.")
            yield start, block


def _canonical_npy(src: Path, out: Path, limits: Limits, durable: bool,
                   min_samples: int) -> tuple[tuple[int, ...], str]:
    """A float32 little-endian C-order array is checked in place and moved to ``out``; anything
    else is converted block by block. Returns the canonical shape and the source dtype."""
    header = npy_header(src)
    shape = header.shape
    if header.dtype.kind not in "biuf" or header.dtype.fields is not None:
        raise NON_NUMERIC(f"The array has dtype {header.dtype}; only numbers (bool, int, float) are "
                          "accepted.", dtype=str(header.dtype))
    if len(shape) < 2:
        raise ONE_DIMENSIONAL(f"The array has shape {list(shape)}; upload a 2-D matrix "
                              "(samples x features), or images as (N, H, W) / (N, C, H, W).", shape=list(shape))
    if len(shape) > 4:
        raise TOO_MANY_DIMENSIONS(f"The array has shape {list(shape)}; at most 4 dimensions "
                                  "(N, C, H, W) are understood.", shape=list(shape))
    _check_samples(shape, min_samples)
    _check_expanded(header.size, limits)
    canonical = (shape[0], 1, *shape[1:]) if len(shape) == 3 else shape  # (N, H, W) grayscale images
    in_place = (header.dtype == _CANONICAL and not header.fortran_order
                and (canonical == shape or rewrite_shape(src, header, canonical)))
    if in_place:
        for start, block in _npy_blocks(src, header, canonical):
            _checked(block, start)
        if durable:
            _fsync(src)
        os.replace(src, out)
        return canonical, header.dtype.name
    writer = NpyWriter(out)
    try:
        for start, block in _npy_blocks(src, header, canonical):
            writer.append(_checked(block, start))
        writer.close(durable)
    except BaseException:
        writer.abort()
        raise
    return canonical, header.dtype.name


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unpack_npz(path: Path, stack: ExitStack, staging: Staging, max_expanded: int) -> tuple[Path, np.ndarray | None]:
    """Extract ``x`` (to a staging file, streamed) and load ``y``; a zip bomb stops at ``max_expanded``."""
    try:
        check_members(path, MAX_NPZ_MEMBERS)
    except TooManyMembers:
        raise TOO_MANY_MEMBERS(f"The .npz holds more than {MAX_NPZ_MEMBERS} members; numpy.savez writes one "
                               "per array (x, and y for labels).", limit=MAX_NPZ_MEMBERS) from None
    except (NotAZip, OSError) as exc:
        raise INVALID_FILE(f"The .npz cannot be read: it is truncated or corrupt ({exc}).") from None
    try:
        zf = stack.enter_context(zipfile.ZipFile(path))
        members = {info.filename: info for info in zf.infolist()}
        if "x.npy" not in members:
            raise MISSING_ARRAY("The .npz has no array named 'x' (save it with numpy.savez(f, x=X, y=y)).",
                                arrays=sorted(m.removesuffix(".npy") for m in members)[:100])
        wanted = [members["x.npy"]] + ([members["y.npy"]] if "y.npy" in members else [])
        for info in wanted:
            _check_member(info)
        declared = sum(info.file_size for info in wanted)
        if declared > max_expanded:
            raise too_large_expanded(declared, max_expanded)
        x_path = stack.enter_context(staging(".npy"))
        budget = _extract(zf, members["x.npy"], x_path, max_expanded)
        labels = None
        if "y.npy" in members:
            y_path = stack.enter_context(staging(".npy"))
            _extract(zf, members["y.npy"], y_path, budget)
            labels = np.asarray(checked_npy(y_path, "array 'y'"))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise INVALID_FILE(f"The .npz cannot be read: it is truncated or corrupt ({exc}).") from None
    return x_path, labels


def _check_member(info: zipfile.ZipInfo) -> None:
    """Members numpy can have written: not encrypted, stored or deflated."""
    if info.flag_bits & 0x1:
        raise UNSUPPORTED_FORMAT(f"The .npz member {info.filename!r} is encrypted; save the arrays with numpy.savez "
                          "(no password).", member=info.filename)
    if info.compress_type not in _ZIP_METHODS:
        raise UNSUPPORTED_FORMAT(f"The .npz member {info.filename!r} uses zip compression method {info.compress_type}; "
                          "only stored and deflated members are read (numpy.savez / savez_compressed).",
                          member=info.filename, compress_type=info.compress_type)


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


def _first_line(path: Path, delimiter: str, max_columns: int) -> bytes:
    """The bytes of the first line, refused as soon as it holds more than ``max_columns`` fields
    (counted in 1 MB pieces: a line of millions of columns is never held whole)."""
    sep = delimiter.encode()
    max_bytes = max(1 << 20, 64 * max_columns)  # 64 bytes a cell is generous for numbers and names
    line, fields = b"", 1
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            end = piece.find(b"\n")
            part = piece if end < 0 else piece[:end]
            fields += part.count(sep)
            if fields > max_columns:
                raise too_many_columns(f"more than {max_columns}", max_columns)
            line += part
            if len(line) > max_bytes:
                raise INVALID_FILE(f"The first line is longer than {max_bytes} bytes; is this a "
                                   "CSV/TSV table with one sample per line?", max_bytes=max_bytes)
            if end >= 0:
                break
    return line


def _first_row(path: Path, delimiter: str, max_columns: int) -> list[str]:
    try:
        text = _first_line(path, delimiter, max_columns).decode("utf-8").removeprefix(codecs.BOM_UTF8.decode())
        return next(csv.reader([text.rstrip("\r")], delimiter=delimiter), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise INVALID_FILE(f"The file is not readable text ({exc}).") from None


def _label_index(label_column: str | None, header: list[str] | None, n_columns: int) -> int | None:
    if label_column is None:
        return None
    if header is not None and label_column in header:
        return header.index(label_column)
    if label_column.isdigit() and int(label_column) < n_columns:
        return int(label_column)
    raise UNKNOWN_LABEL_COLUMN(f"label_column {label_column[:100]!r} is neither a header name nor a "
                               f"column index below {n_columns}.", label_column=label_column[:100],
                               columns=header[:100] if header else n_columns)


def _csv_blocks(path: Path, delimiter: str, label_column: str | None, limits: Limits) -> Blocks:
    import pandas as pd  # a streaming C parser; imported on first use, not at API start-up

    first = _first_row(path, delimiter, limits.max_columns)
    if not first:
        raise EMPTY_DATA("The file is empty.")
    fixed_index = int(label_column) if label_column is not None and label_column.isdigit() else None
    # A header is a first row with a non-empty cell that is not a number (the label cell aside).
    has_header = any(cell.strip() and not _is_number(cell) for i, cell in enumerate(first) if i != fixed_index)
    header = [c.strip() for c in first] if has_header else None
    label = _label_index(label_column, header, len(first))
    width = len(first)
    if label is not None and width == 1:
        raise EMPTY_DATA("There are no feature columns besides the label column.")
    # At least 64 rows a block: the parser's cost per block and column must not dominate wide tables.
    rows = max(64, _BLOCK_BYTES // (8 * width))
    # The parser infers each block's column types: integer columns parse about twice as fast as
    # forced float64 ones, and a column that is not numeric is found by _numeric below.
    try:
        reader = pd.read_csv(path, sep=delimiter, header=None, skiprows=1 if has_header else 0,
                             dtype=None if label is None else {label: str}, chunksize=rows, engine="c",
                             encoding="utf-8")
        first_row = 0
        with reader:
            for chunk in reader:
                if chunk.shape[1] != width:
                    raise RAGGED_ROWS(f"Rows have {chunk.shape[1]} columns where the first row has {width}.")
                with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused as non-finite
                    x = _numeric(chunk if label is None else chunk.drop(columns=label), first_row).to_numpy(_CANONICAL)
                first_row += len(chunk)
                if not np.isfinite(x).all():
                    # Short rows come back padded with NaN: report them as what they are.
                    _refuse_ragged(path, delimiter, width)
                y = None
                if label is not None:
                    column = chunk[label]
                    if column.isna().any():
                        raise MISSING_LABELS("The label column has empty cells; every sample needs a label.")
                    y = column.to_numpy(dtype=str)
                del chunk
                yield x, y
    except pd.errors.EmptyDataError:
        return
    except pd.errors.ParserError as exc:
        text = str(exc).strip()
        if "Expected" in text and "fields" in text:
            raise RAGGED_ROWS(f"Rows have different numbers of columns: {text.removeprefix('Error tokenizing data. ')}") from None
        raise INVALID_FILE(f"The file cannot be parsed: {text[:300]}") from None
    except UnicodeDecodeError as exc:
        raise INVALID_FILE(f"The file is not UTF-8 text ({exc}).") from None
    except ValueError as exc:
        raise NON_NUMERIC(f"A cell is not a number: {str(exc)[:300]}") from None


def _numeric(frame, first_row: int):
    """``frame`` with every column numeric; a text column whose cells all read as numbers (e.g.
    integers beyond int64) is converted, any other is refused at its first non-number."""
    import pandas as pd

    original = frame  # copied before the first column is replaced, never changed in place
    for column in frame.columns:
        kind = frame[column].dtype.kind
        if kind in "iuf":
            continue
        values = frame[column]
        numbers = pd.to_numeric(values, errors="coerce") if kind == "O" else None
        bad = values.notna() & (numbers.isna() if numbers is not None else True)
        if not bad.any():
            frame = frame.copy() if frame is original else frame
            frame[column] = numbers
            continue
        row = int(np.flatnonzero(bad.to_numpy())[0])
        col = int(column)  # read with header=None: the column's position in the file
        raise NON_NUMERIC(f"Row {first_row + row}, column {col} is not a number: "
                          f"{str(values.iloc[row])[:100]!r}.", row=first_row + row, column=col)
    return frame


def _refuse_ragged(path: Path, delimiter: str, width: int) -> None:
    """The parser fills a short row with NaN: find out whether a row is short (ragged_rows) before
    the NaN is reported as such. Vectorised over the raw bytes, block by block; a file with quotes
    (where a delimiter may sit inside a cell) is not second-guessed."""
    sep, line_no, carry = ord(delimiter), 0, b""
    with open(path, "rb") as f:
        while True:
            piece = f.read(_BLOCK_BYTES)
            data = carry + piece
            if b'"' in data:
                return
            cut = len(data) if not piece else data.rfind(b"\n") + 1
            block, carry = data[:cut], data[cut:]
            if block:
                raw = np.frombuffer(block, dtype=np.uint8)
                ends = np.flatnonzero(raw == 10)
                if not len(ends) or ends[-1] != len(raw) - 1:
                    ends = np.append(ends, len(raw))
                starts = np.concatenate(([0], ends[:-1] + 1))
                counts = np.concatenate(([0], np.cumsum(raw == sep)))
                fields = counts[ends] - counts[starts] + 1
                lengths = ends - starts - (raw[np.maximum(ends - 1, 0)] == 13)  # without a trailing \r
                bad = np.flatnonzero((fields != width) & (lengths > 0))
                if len(bad):
                    line = line_no + int(bad[0]) + 1
                    raise RAGGED_ROWS(f"Line {line} has {int(fields[bad[0]])} columns where the first "
                                      f"row has {width}.", line=line)
                line_no += len(ends)
            if not piece:
                return


# -- .parquet ----------------------------------------------------------------------------------

def _parquet_blocks(path: Path, label_column: str | None, limits: Limits) -> tuple[str, Blocks]:
    footer = _parquet_footer_size(path)
    if footer > _MAX_PARQUET_FOOTER:
        raise TOO_LARGE(f"The Parquet metadata is {footer} bytes; at most {_MAX_PARQUET_FOOTER} "
                        "are read (too many columns or row groups).", {"metadata_bytes": footer})
    try:
        pf = pq.ParquetFile(path, memory_map=False, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise INVALID_FILE(f"The Parquet file cannot be read: it is truncated or corrupt ({exc}).") from None
    schema = pf.schema_arrow
    if len(schema) > limits.max_columns:
        raise too_many_columns(len(schema), limits.max_columns)
    label = _label_index(label_column, schema.names, len(schema.names))
    dtypes = []
    for i, field in enumerate(schema):
        if i == label:
            continue
        if not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_boolean(field.type)):
            raise NON_NUMERIC(f"Column {field.name!r} has type {field.type}; feature columns must be "
                              "numeric.", column=field.name, type=str(field.type))
        dtypes.append(np.dtype(field.type.to_pandas_dtype()))
    if not dtypes:
        raise EMPTY_DATA("There are no feature columns besides the label column.")
    _check_expanded(pf.metadata.num_rows * len(dtypes), limits)
    rows = max(1, _BLOCK_BYTES // (4 * len(dtypes)))  # a block of float32 rows
    features = [i for i in range(len(schema)) if i != label]

    def blocks() -> Blocks:
        # Row-wise reading of a columnar file holds one row group's pages (every column's first
        # pages are needed for the first row); the decoded rows are one block at a time.
        pool = pa.default_memory_pool()
        try:
            for group in range(pf.num_row_groups):
                for batch in pf.iter_batches(batch_size=rows, row_groups=[group]):
                    yield _parquet_block(batch, features, label)
                    del batch
                pool.release_unused()  # the row group's pages go back to the system, not only to Arrow's pool
        except (pa.ArrowException, OSError) as exc:
            raise INVALID_FILE(f"The Parquet file cannot be read: {exc}") from None

    return np.result_type(*dtypes).name, blocks()


def _parquet_footer_size(path: Path) -> int:
    """The footer length the file declares; 0 when it is not plausible (the reader then says why)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size < 12:
            return 0
        f.seek(-8, os.SEEK_END)
        tail = f.read(8)
    footer = int.from_bytes(tail[:4], "little")
    return footer if tail[4:] == b"PAR1" and footer <= size - 12 else 0


def _parquet_block(batch: pa.RecordBatch, features: list[int], label: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Feature columns cast straight to float32 (nulls become NaN, refused later), and the label column."""
    columns = [pc.cast(batch.column(i), pa.float32(), safe=False) for i in features]
    x = np.asarray(pa.RecordBatch.from_arrays(columns, names=[str(i) for i in features])
                   .to_tensor(null_to_nan=True, row_major=True))
    y = None
    if label is not None:
        column = batch.column(label)
        if column.null_count:
            raise MISSING_LABELS("The label column has empty cells; every sample needs a label.")
        y = column.to_numpy(zero_copy_only=False)
        if y.dtype == object:  # text labels
            y = y.astype(str)
    return x, y
