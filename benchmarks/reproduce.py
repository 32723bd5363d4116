"""Reproduce a paper's number: one method, one benchmark dataset, the paper's settings, several seeds.

    python benchmarks/reproduce.py --method dec --dataset usps --seeds 0 1 2

Settings come from ``benchmarks/presets/<method>.json`` (key ``--preset``, default the dataset
name); ``--set name=value`` overrides one param (JSON value) for a quick try, and is recorded in
the output. Each seed prints a JSON line with ACC/NMI/ARI and the wall time of each phase; the
summary (mean and spread) is appended to ``benchmarks/results/<method>-<preset>.jsonl``.
Labels are used only to score the final clustering, never during training.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from deepclust.models import Callback, DeepClusterer, get_method  # noqa: E402
from deepclust.models.metrics import external_metrics  # noqa: E402

from benchdata import DatasetError, add_data_dir_argument, default_data_dir, load_npz  # noqa: E402

# The datasets folder: $DEEPCLUST_DATASETS, else ../shared/datasets beside the repository.
DATASETS = default_data_dir()


def torch_device(name: str) -> torch.device:
    """The device a ``device=name`` estimator trains on (``"auto"``: CUDA when present)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_preset(method: str, name: str) -> dict:
    """``presets/<method>.json``'s entry ``name`` (``n_clusters``, ``params``, ``scaling``);
    ``KeyError`` naming the presets there if it has none."""
    presets = json.loads((ROOT / "presets" / f"{method}.json").read_text())
    if name.startswith("_") or name not in presets:
        raise KeyError(f"no preset {name!r} for {method}; have {[k for k in presets if not k.startswith('_')]}")
    return presets[name]


class PhaseTimer(Callback):
    """Wall time of each training phase (pretrain, init, finetune)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}
        self._phase, self._start = None, None

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_phase_begin(self, phase, epochs):
        self.close()
        self._phase, self._start = phase, time.perf_counter()

    def close(self):
        if self._phase is not None:
            self._sync()
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + time.perf_counter() - self._start
            self._phase = None


class LabelTrace(Callback):
    """Prints the score of every labelling the training reports (``--trace``): where a run drifts."""

    def __init__(self, y: np.ndarray):
        self.y = y

    def on_labels(self, phase, iteration, labels, label_change):
        scores = external_metrics(self.y, labels)
        sizes = sorted(np.bincount(labels).tolist(), reverse=True)
        print(f"  {phase} {iteration}: acc {scores['acc']:.4f} nmi {scores['nmi']:.4f} sizes {sizes}",
              file=sys.stderr, flush=True)


def load_dataset(name: str, data_dir: Path, *, images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D), or for an image method the images (N, C, H, W) from the file's ``shape``;
    the file checked against benchmarks/DATASETS.md (``benchdata.load_npz``)."""
    d = load_npz(name, data_dir)
    x = d["x"].reshape(-1, *(int(s) for s in d["shape"])) if images else d["x"]
    return x, d["y"]


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", required=True)
    ap.add_argument("--dataset", required=True, help="a .npz in the datasets folder, e.g. usps, mnist")
    ap.add_argument("--preset", help="key in presets/<method>.json; default: the dataset name")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="NAME=VALUE")
    add_data_dir_argument(ap)
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--trace", action="store_true", help="print ACC/NMI of every labelling during training")
    args = ap.parse_args(argv)

    preset_name = args.preset or args.dataset
    try:
        preset = load_preset(args.method, preset_name)
    except KeyError as exc:
        ap.error(exc.args[0])
    overrides = parse_overrides(args.overrides)
    params = {**preset["params"], **overrides}
    try:
        x, y = load_dataset(args.dataset, args.data_dir, images="features" not in get_method(args.method).input_kinds)
    except DatasetError as exc:
        sys.exit(f"reproduce.py: {exc}")

    runs = []
    for seed in args.seeds:
        est = DeepClusterer(args.method, preset["n_clusters"], random_state=seed, device=args.device,
                            scaling=preset.get("scaling", "auto"), **params)
        timer = PhaseTimer(torch_device(args.device))
        start = time.perf_counter()
        est.fit(x, callbacks=[timer, *([LabelTrace(y)] if args.trace else [])])
        timer.close()
        row = {"seed": seed, **external_metrics(y, est.labels_),
               "seconds": {k: round(v, 1) for k, v in timer.seconds.items()},
               "total_seconds": round(time.perf_counter() - start, 1),
               "finetune_epochs": sum(1 for h in est.history_ if h["phase"] == "finetune")}
        runs.append(row)
        print(json.dumps(row), flush=True)

    summary = {
        "method": args.method, "dataset": args.dataset, "preset": preset_name, "overrides": overrides,
        "n_samples": int(len(x)), "seeds": args.seeds,
        **{f"{m}_mean": round(float(np.mean([r[m] for r in runs])), 4) for m in ("acc", "nmi", "ari")},
        **{f"{m}_std": round(float(np.std([r[m] for r in runs])), 4) for m in ("acc", "nmi", "ari")},
        "device": str(est.device_) + (f" ({torch.cuda.get_device_name()})" if est.device_.type == "cuda"
                                      else f" ({platform.processor() or platform.machine()}, "
                                           f"{torch.get_num_threads()} threads)"),
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "runs": runs,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"{args.method}-{preset_name}.jsonl", "a") as f:
        f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
