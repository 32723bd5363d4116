"""AE+DAC ablations (issue #24): one pretrained autoencoder per seed, then every variant's joint
training from it, so the variants differ in the joint phase only.

    OMP_NUM_THREADS=1 python benchmarks/ae_dac_ablation.py --dataset mnist_test --data-dir /tmp/dcdata \\
        --seeds 0 --pretrain-epochs 20 --xi-lr 0.025 --out benchmarks/results/ae_dac-ablation.jsonl

Each (seed, variant) appends one JSON line: ACC/NMI/ARI at the end, the ACC after every joint
epoch (labels score the clustering, never train it), the selected positive / negative pair
fractions of every epoch (the history's ``positive_pairs`` / ``negative_pairs``), the thresholds,
and the seconds. ``--variants`` picks some of ``VARIANTS`` by name.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from deepclust.models import Callback, DeepClusterer  # noqa: E402
from deepclust.models.metrics import external_metrics  # noqa: E402
from benchdata import add_data_dir_argument  # noqa: E402
from reproduce import load_dataset  # noqa: E402

# name -> joint-training params (the pretraining is shared). "paper" is the paper's joint phase
# (one view, Adam 1e-4, α = 0.5); the rest add DAC's second view and then one change at a time.
VARIANTS = {
    "paper": {"variant": "paper"},
    "2view-adam1e-4": {"variant": "paper", "augmentation": "auto"},
    "2view-rmsprop1e-3": {"variant": "paper", "augmentation": "auto", "optimizer": "rmsprop", "lr": 1e-3},
    "2view-rmsprop1e-3-alpha0": {"variant": "paper", "augmentation": "auto", "optimizer": "rmsprop", "lr": 1e-3,
                                 "alpha": 0.0},
    "2view-rmsprop1e-3-floor0.7": {"variant": "paper", "augmentation": "auto", "optimizer": "rmsprop", "lr": 1e-3,
                                   "upper_floor": 0.7},
    "2view-rmsprop1e-3-alpha0-floor0.7": {"variant": "paper", "augmentation": "auto", "optimizer": "rmsprop",
                                          "lr": 1e-3, "alpha": 0.0, "upper_floor": 0.7},
}


class Trace(Callback):
    def __init__(self, y):
        self.y, self.acc = y, []

    def on_labels(self, phase, iteration, labels, label_change):
        if phase == "finetune":
            self.acc.append(round(external_metrics(self.y, labels)["acc"], 4))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist_test")
    add_data_dir_argument(ap)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--pretrain-epochs", type=int, default=20)
    ap.add_argument("--xi-lr", type=float, default=0.005, help="η of the ξ schedule (0.005: 75 epochs; 0.025: 15)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--guard", default="off", help="the estimator's degenerate-clustering guard (off: the method alone)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "ae_dac-ablation.jsonl")
    args = ap.parse_args(argv)
    x, y = load_dataset(args.dataset, args.data_dir, images=True)
    for seed in args.seeds:
        start = time.perf_counter()
        base = DeepClusterer("ae_dac", 10, random_state=seed, pretrain_epochs=args.pretrain_epochs, max_epochs=1,
                             guard=args.guard).fit(x)
        pretrain_s = time.perf_counter() - start
        for name in args.variants:
            params = {**VARIANTS[name], "pretrain_epochs": args.pretrain_epochs, "xi_lr": args.xi_lr}
            trace = Trace(y)
            start = time.perf_counter()
            est = DeepClusterer("ae_dac", 10, random_state=seed, guard=args.guard, **params)
            est.fit(x, pretrained=base, callbacks=[trace])
            joint = [h for h in est.history_ if h["phase"] == "finetune"]
            row = {"dataset": args.dataset, "n": int(len(x)), "seed": seed, "variant": name, "params": params,
                   "guard": args.guard, **{k: round(float(v), 4) for k, v in external_metrics(y, est.labels_).items()},
                   "acc_per_epoch": trace.acc,
                   "positive_pairs": [round(h["positive_pairs"], 4) for h in joint],
                   "negative_pairs": [round(h["negative_pairs"], 4) for h in joint],
                   "upper": [round(h["upper"], 4) for h in joint], "lower": [round(h["lower"], 4) for h in joint],
                   "joint_epochs": len(joint), "joint_seconds": round(time.perf_counter() - start, 1),
                   "pretrain_seconds": round(pretrain_s, 1), "torch_threads": torch.get_num_threads(),
                   "date": time.strftime("%Y-%m-%d")}
            print(json.dumps(row), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
