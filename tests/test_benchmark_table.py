"""benchmarks/table.py, the reproduction-table runner, as a tiny dry run on the CPU.

No shared data: the datasets folder is an empty temporary one, so the cells run on
scikit-learn's bundled digits with each method's tiny_preset (about 20 s in all).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "table.py"
CELLS = "dec:digits:0,kmeans:digits:0"


def table(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DEEPCLUST_DATASETS"}
    return subprocess.run([sys.executable, str(TABLE), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, list[dict], subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("table")
    (tmp / "data").mkdir()
    out = tmp / "table.jsonl"
    proc = table("--device", "cpu", "--tiny", "--data-dir", str(tmp / "data"), "--budget-s", "60",
                 "--cells", CELLS, "--threads", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, [json.loads(line) for line in out.read_text().splitlines()], proc


def test_each_cell_is_one_json_line_with_its_scores_and_settings(run):
    _, rows, _ = run
    assert [(r["method"], r["dataset"], r["seed"]) for r in rows] == [("dec", "digits", 0), ("kmeans", "digits", 0)]
    for row in rows:
        assert row["status"] == "ok"
        for field in ("n", "settings", "acc", "nmi", "ari", "seconds", "device", "torch", "command"):
            assert field in row, field
        assert 0.0 <= row["acc"] <= 1.0 and -1.0 <= row["ari"] <= 1.0 and 0.0 <= row["nmi"] <= 1.0
        assert 100 <= row["n"] <= 1797
        assert row["settings"]["tiny"] is True and row["settings"]["n_clusters"] == 10
        assert "--tiny" in row["command"] and row["device"].startswith("cpu")
    assert rows[0]["settings"]["params"]["pretrain_epochs"] <= 5  # tiny_preset, not the paper's 50


def test_resume_skips_the_finished_cells(run):
    out, rows, _ = run
    proc = table("--device", "cpu", "--tiny", "--data-dir", str(out.parent / "data"), "--budget-s", "60",
                 "--cells", CELLS, "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to run" in proc.stderr
    assert len(out.read_text().splitlines()) == len(rows)


def test_summarize_prints_a_markdown_table(run):
    out, _, _ = run
    proc = table("--summarize", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("| method | data |") for line in lines)
    dec = next(line for line in lines if line.startswith("| DEC | digits |"))
    assert "1 (0)" in dec and "tiny dry run" in dec
    assert any(line.startswith("| k-means | digits |") for line in lines)
