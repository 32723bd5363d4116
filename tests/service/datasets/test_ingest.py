"""ingest.canonicalize on its own: every format block by block, in-place .npy, refusals with positions."""
from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepclust.app.datasets.ingest import formats
from deepclust.app.datasets.ingest import tabular as ingest
from deepclust.app.datasets.ingest.labels import read_labels_file
from deepclust.app.datasets.ingest.reading import Canonical
from deepclust.app.core.npyfile import open_array
from deepclust.app.errors import ApiError

ROWS, WIDTH = 300, 7


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 1 KB: a 300-row table spans dozens of them (the pandas reader's floor is 64 rows)."""
    monkeypatch.setattr(ingest, "_BLOCK_BYTES", 1024)


@pytest.fixture
def staging(tmp_path):
    @contextmanager
    def make(suffix: str = ""):
        path = tmp_path / f"staging-{len(list(tmp_path.iterdir()))}{suffix}"
        path.touch()
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    return make


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(ROWS, WIDTH)).astype(np.float32), rng.choice(["b", "a", "c"], size=ROWS)


def canon(tmp_path: Path, name: str, content: bytes, staging, **kwargs) -> tuple[Canonical, np.ndarray]:
    src, out = tmp_path / name, tmp_path / "out.npy"
    src.write_bytes(content)
    fmt = formats.guess(name, src.read_bytes()[:formats.MAGIC_BYTES]).name
    result = ingest.canonicalize(src, fmt, out, staging=staging, max_expanded_bytes=1 << 30, **kwargs)
    return result, np.asarray(open_array(out))


def refusal(tmp_path, name, content, staging, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as caught:
        canon(tmp_path, name, content, staging, **kwargs)
    return caught.value


def test_csv_and_parquet_across_many_blocks_equal_the_array(tmp_path, staging, small_blocks):
    X, y = data()
    lines = ["f0,f1,f2,label,f3,f4,f5,f6"] + [
        ",".join([*map(repr, map(float, row[:3])), label, *map(repr, map(float, row[3:]))]) for row, label in zip(X, y)]
    result, stored = canon(tmp_path, "t.csv", "\r\n".join(lines).encode(), staging, label_column="label")
    np.testing.assert_array_equal(stored, X)  # float32 values written exactly come back exactly
    np.testing.assert_array_equal(result.labels, np.unique(y, return_inverse=True)[1])
    assert result.shape == (ROWS, WIDTH) and result.n_classes == 3

    table = pa.table({**{f"f{i}": X[:, i] for i in range(WIDTH)}, "label": y})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=50)
    result, stored = canon(tmp_path, "t.parquet", buffer.getvalue(), staging, label_column="label")
    np.testing.assert_array_equal(stored, X)
    np.testing.assert_array_equal(result.labels, np.unique(y, return_inverse=True)[1])
    assert result.source_dtype == "float32"


def test_float32_npy_is_moved_into_place_and_other_dtypes_are_converted(tmp_path, staging, small_blocks):
    X, _ = data()
    buffer = io.BytesIO()
    np.save(buffer, X)
    src, out = tmp_path / "x.npy", tmp_path / "out.npy"
    src.write_bytes(buffer.getvalue())
    result = ingest.canonicalize(src, "npy", out, staging=staging, max_expanded_bytes=1 << 30)
    assert not src.exists() and out.read_bytes() == buffer.getvalue()  # renamed, not rewritten
    assert result.shape == X.shape and result.source_dtype == "float32"

    images = np.random.default_rng(1).random((40, 6, 5), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, images)
    result, stored = canon(tmp_path, "img.npy", buffer.getvalue(), staging)
    assert result.shape == (40, 1, 6, 5) and (tmp_path / "out.npy").stat().st_size == len(buffer.getvalue())
    np.testing.assert_array_equal(stored[:, 0], images)  # the header gained the channel axis in place

    for variant in (X.astype(">f4"), np.asfortranarray(X), X.astype(np.float64), (X > 0)):
        buffer = io.BytesIO()
        np.save(buffer, variant)
        _, stored = canon(tmp_path, "v.npy", buffer.getvalue(), staging)
        assert stored.dtype == np.float32 and stored.flags.c_contiguous
        np.testing.assert_array_equal(stored, np.asarray(variant, dtype=np.float32))


def test_refusals_name_the_row_in_any_block(tmp_path, staging, small_blocks):
    X, _ = data()
    rows = [",".join(map(repr, map(float, row))) for row in X]
    bad = list(rows)
    bad[250] = ",".join(bad[250].split(",")[:-1])  # one cell short, far past the first block
    error = refusal(tmp_path, "r.csv", "\n".join(bad).encode(), staging)
    assert (error.code, error.details["line"]) == ("ragged_rows", 251)
    bad = list(rows)
    bad[250] = ",".join(bad[250].split(",")[:-1]) + ","  # an empty cell
    error = refusal(tmp_path, "e.csv", "\n".join(bad).encode(), staging)
    assert (error.code, error.details["row"], error.details["column"]) == ("non_finite", 250, WIDTH - 1)

    X64 = X.astype(np.float64)
    X64[260, 3] = 1e300  # finite in float64, not in float32
    buffer = io.BytesIO()
    np.save(buffer, X64)
    error = refusal(tmp_path, "o.npy", buffer.getvalue(), staging)
    assert (error.code, error.details["row"], error.details["column"]) == ("non_finite", 260, 3)


def test_csv_columns_are_typed_per_block_and_a_non_number_is_named(tmp_path, staging, small_blocks):
    ints = np.arange(ROWS * WIDTH).reshape(ROWS, WIDTH)
    lines = [",".join(map(str, row)) for row in ints]
    lines[200] = ",".join(["0", "1.5e0", *lines[200].split(",")[2:]])  # float cells in an integer block
    lines[201] = ",".join([str(2 ** 70), *lines[201].split(",")[1:]])  # beyond int64: a number all the same
    _, stored = canon(tmp_path, "i.csv", "\n".join(lines).encode(), staging)
    expected = ints.astype(np.float32)
    expected[200, :2], expected[201, 0] = (0, 1.5), 2.0 ** 70
    np.testing.assert_array_equal(stored, expected)

    for cell, at in (("abc", (250, 2)), ("True", (260, 4))):
        bad = [line.split(",") for line in lines]
        bad[at[0]][at[1]] = cell
        error = refusal(tmp_path, f"n{at[0]}.csv", "\n".join(map(",".join, bad)).encode(), staging)
        assert (error.code, error.details["row"], error.details["column"]) == ("non_numeric", *at)
        assert repr(cell) in error.message


def test_labels_text_is_streamed_to_the_codes_np_unique_gives(tmp_path):
    labels = np.array(["10", "2", "cat", "1", "2", "10"])
    path = tmp_path / "y.txt"
    path.write_text(" \n".join(labels) + "\n\n")
    codes = read_labels_file(path, "y.txt", len(labels))
    np.testing.assert_array_equal(codes, np.unique(labels, return_inverse=True)[1])
    np.testing.assert_array_equal(read_labels_file(path, "y.txt"), codes)
    with pytest.raises(ApiError) as caught:
        read_labels_file(path, "y.txt", 4)
    assert caught.value.details == {"n_labels": 6, "n_samples": 4}


# -- the input-format table (app/datasets/ingest/formats.py) ---------------------------------------

def test_every_format_of_the_table_has_its_readers():
    import importlib
    for fmt in formats.FORMATS:
        module = importlib.import_module(fmt.reader)
        assert callable(getattr(module, "read_rows")), fmt.name
        assert not fmt.dataset or callable(getattr(module, "read_dataset")), fmt.name


@pytest.mark.parametrize(("name", "head", "expected"), [
    ("x.CSV", b"", "csv"), ("x.pq", b"", "parquet"), ("a.tar.gz", b"", "tar.gz"), ("a.tgz", b"", "tar.gz"),
    ("a.tar", b"", "tar"), ("a.npy.zip", b"", "zip"), ("dir/a.JPEG", b"", "image"),
    ("blob", b"\x93NUMPY", "npy"), ("blob", b"PAR1", "parquet"), ("blob", b"PK\x03\x04", "npz"),
    ("blob", b"\x1f\x8b", "tar.gz"), ("blob", b"\0" * 257 + b"ustar", "tar"), ("blob", b"text", None)])
def test_a_format_is_told_by_its_name_else_by_its_first_bytes(name, head, expected):
    found = formats.guess(name, head)
    assert (found.name if found else None) == expected


def test_the_texts_list_the_formats_of_the_table():
    assert formats.DATA_SUFFIXES == ".npy, .npz, .csv, .tsv, .parquet"
    assert formats.ARCHIVE_SUFFIXES == [".zip", ".tar", ".tar.gz", ".tgz"]
    assert formats.LABEL_COLUMN_FORMATS == ["csv", "tsv", "parquet"]


def test_a_csv_upload_never_loads_the_archive_or_image_code(tmp_path):
    """The readers are imported by the format that needs them: a CSV dataset loads neither the
    archive nor the image modules (nor Pillow)."""
    import subprocess
    import sys
    (tmp_path / "x.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    code = f"""
import sys
from pathlib import Path
from contextlib import contextmanager
from deepclust.app.core.settings import Settings
from deepclust.app.datasets import service
from deepclust.app.datasets.ingest.reading import Reading, detect, read_dataset
src = Path({str(tmp_path / "x.csv")!r})
@contextmanager
def staging(suffix):
    yield Path({str(tmp_path)!r}) / ("s" + suffix)
fmt = detect("x.csv", src, dataset=True)
canon = read_dataset(src, fmt, Path({str(tmp_path / "out.npy")!r}), Reading(staging, Settings(), {{}}, "x.csv", 1))
loaded = [m for m in sys.modules if m.startswith("PIL") or m.rsplit(".", 1)[-1] in ("archives", "images", "image_inputs")]
print(canon.shape, loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "(3, 2) []", out.stdout + out.stderr
