"""benchmarks/ae_dac_selection.py's rule and table, on made-up epoch rows (no data, no training)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import ae_dac_selection as selection  # noqa: E402


def epoch(n, agreement, acc, degenerate=False):
    return {"epoch": n, "confidence": 0.9, "view_agreement": agreement, "silhouette": 0.2, "size_entropy": 0.95,
            "stability": None if n == 1 else 0.9, "degenerate": degenerate, "acc": acc, "nmi": acc, "ari": acc}


ROWS = [epoch(1, 0.80, 0.70), epoch(2, 0.95, 0.90), epoch(3, 0.99, 0.30, degenerate=True), epoch(4, 0.95, 0.85),
        epoch(5, 0.90, 0.80)]


def test_the_rule_keeps_the_highest_healthy_score_and_the_later_epoch_on_a_tie():
    assert selection.pick(ROWS, "view_agreement")["epoch"] == 4  # 3 is degenerate; 2 and 4 tie
    assert selection.pick(ROWS, "stability")["epoch"] == 5  # epoch 1 has no stability; 2, 4, 5 tie
    assert selection.pick([{**r, "degenerate": True} for r in ROWS], "view_agreement")["epoch"] == 5  # none: the last


def test_the_summary_has_a_row_per_seed_and_the_mean_per_dataset(tmp_path, capsys):
    out = tmp_path / "selection.jsonl"
    lines = [{"dataset": "toy", "seed": seed, "epochs": ROWS, "final": {"acc": 0.85}, "selected_epoch": 4}
             for seed in (1, 0)]
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    selection.main(["--summarize", str(out)])
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| data | seed | last | confidence (epoch) | view_agreement (epoch)")
    assert [row.split(" | ")[1] for row in table[2:4]] == ["0", "1"]  # sorted by seed
    assert "| 0.800 | " in table[2] and "0.850 (4)" in table[2] and "0.900 (2)" in table[2]
    assert table[4].startswith("| toy | mean ± std (2) | **0.800 ± 0.000**")
