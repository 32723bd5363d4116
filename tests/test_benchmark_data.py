"""benchmarks/benchdata.py: where the benchmarks find their data and the check that it is the
data they were measured on. The files here are made in tmp_path (never the real benchmark
data): a missing file, a changed one and a right one, against a KNOWN entry made for the test.
"""
from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import benchdata  # noqa: E402


@pytest.fixture
def known(tmp_path, monkeypatch):
    """A data folder with ``toy.npz`` (x, y, shape, split) registered as a known benchmark file."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.savez(data / "toy.npz", x=rng.random((6, 4), dtype=np.float32), y=np.arange(6) % 2,
             shape=np.array([1, 2, 2]), split=np.array([0, 0, 0, 0, 1, 1], np.uint8))
    raw = (data / "toy.npz").read_bytes()
    monkeypatch.setitem(benchdata.KNOWN, "toy.npz",
                        benchdata.Known(len(raw), hashlib.sha256(raw).hexdigest(), "toynpz"))
    monkeypatch.setitem(benchdata.DERIVED, "toy_test", ("toy.npz", 1))
    return data, tmp_path / "cache.json"


def test_a_known_file_loads_and_its_digest_is_cached(known):
    data, cache = known
    arrays = benchdata.load_npz("toy", data, cache=cache)
    assert arrays["x"].shape == (6, 4) and list(arrays["shape"]) == [1, 2, 2]
    assert benchdata.KNOWN["toy.npz"].sha256 in cache.read_text()
    # Cached: the same stamp is not hashed again (a wrong cached digest would be believed) ...
    cache.write_text(cache.read_text().replace(benchdata.KNOWN["toy.npz"].sha256, "0" * 64))
    with pytest.raises(benchdata.DatasetError, match="sha256 0{64}"):
        benchdata.dataset_path("toy.npz", data, cache=cache)


def test_a_missing_file_names_the_folder_the_size_and_the_sha256(known, tmp_path):
    _, cache = known
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(benchdata.DatasetError) as err:
        benchdata.load_npz("toy", empty, cache=cache)
    message = str(err.value)
    assert f"no toy.npz in {empty}" in message and "--data-dir" in message and "$DEEPCLUST_DATASETS" in message
    assert benchdata.KNOWN["toy.npz"].sha256 in message and "DATASETS.md#toynpz" in message


def test_a_changed_file_is_refused_with_both_digests(known):
    data, cache = known
    benchdata.load_npz("toy", data, cache=cache)  # cached while right
    raw = bytearray((data / "toy.npz").read_bytes())
    raw[-30] ^= 0xFF  # same size, other bytes, new mtime: hashed again
    (data / "toy.npz").write_bytes(bytes(raw))
    with pytest.raises(benchdata.DatasetError) as err:
        benchdata.load_npz("toy", data, cache=cache)
    assert f"sha256 {hashlib.sha256(raw).hexdigest()}" in str(err.value)
    assert benchdata.KNOWN["toy.npz"].sha256 in str(err.value)
    with pytest.raises(benchdata.DatasetError, match="7 bytes"):
        (data / "toy.npz").write_bytes(b"1234567")
        benchdata.check("toy", data, cache=cache)


def test_a_derived_dataset_is_cut_from_its_file(known):
    data, cache = known
    arrays = benchdata.load_npz("toy_test", data, cache=cache)
    full = benchdata.load_npz("toy", data, cache=cache)
    assert np.array_equal(arrays["x"], full["x"][4:]) and list(arrays["y"]) == [0, 1]
    assert list(arrays["shape"]) == [1, 2, 2]
    benchdata.check("toy_test", data, cache=cache)


def test_the_known_files_are_those_datasets_md_lists():
    """KNOWN and benchmarks/DATASETS.md give the same size and sha256 for every file."""
    text = (ROOT / "benchmarks" / "DATASETS.md").read_text()
    for name, known in benchdata.KNOWN.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"DATASETS.md has no row for {name}"
        assert known.sha256 in row and f"{known.size:,}" in row, row
        assert re.search(rf"^### `{re.escape(name)}`", text, re.M), f"DATASETS.md has no section for {name}"


SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "benchdata.py")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_reads_data_through_benchdata(script, monkeypatch):
    """No script has its own datasets path or np.load of a benchmark file; one that reads data
    takes --data-dir."""
    source = script.read_text()
    # The default folder's own two names, taken from benchdata: this test reads no data itself.
    monkeypatch.delenv(benchdata.ENV, raising=False)
    folder, parent = benchdata.default_data_dir().name, benchdata.default_data_dir().parent.name
    assert not re.search(rf"""["']{parent}["']\s*\)?\s*/\s*["']{folder}""", source), "a hard-coded default folder"
    assert not re.search(r"np\.load\([^)]*(data_dir|DATASETS|MNIST)", source), "np.load of a benchmark file"
    if re.search(r"\b(load_npz|dataset_path|check|load_dataset)\(", source):
        assert "add_data_dir_argument(" in source, "reads benchmark data but takes no --data-dir"
