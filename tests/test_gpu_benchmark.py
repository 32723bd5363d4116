"""benchmarks/gpu.py (issue #26 part 2's one script) dry-runs on the CPU: a subset of its
sections within a small budget, each writing its JSON line as it goes."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_dry_run_writes_json_lines(tmp_path):
    out = tmp_path / "gpu"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--tiny",
                           "--budget-s", "45", "--sections", "env,ratio,kmeans,predict", "--out", str(out)],
                          capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "gpu.jsonl").read_text().splitlines()]
    by = {}
    for row in rows:
        by.setdefault(row["section"], []).append(row)
    assert rows[0]["section"] == "start" and rows[-1] == {**rows[-1], "section": "done", "failures": 0}
    env = by["env"][0]
    assert env["device"] == "cpu" and env["info"]["usable"] and env["accel_auto"]["capture"] == "off"
    ratio = by["ratio"][0]
    # The ratio is of the unrounded medians: recompute it from the samples, not the rounded seconds.
    medians = {kind: statistics.median(ratio["samples"][kind]) for kind in ("library", "bare")}
    assert ratio["library_s"] > 0 and ratio["bare_s"] > 0
    assert ratio["ratio"] == round(medians["bare"] / medians["library"], 4)
    km = by["kmeans"][0]
    assert km["sklearn_s"] > 0 and km["torch_s"] > 0 and abs(km["inertia_rel_diff"]) < 0.05
    predict = by["predict"][0]
    assert predict["rows"] == 1797 and predict["rows_per_s"] > 0 and predict["one_row_latency_ms"]["p50"] > 0
    assert rows[-1]["t_s"] <= 45 + 15  # the budget holds (a section past it is not started)
