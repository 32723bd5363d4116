"""Fingerprints of training results, to prove that a refactor changed no number.

    python benchmarks/bit_identity.py --out before.json            # on the old code
    python benchmarks/bit_identity.py --compare before.json        # on the new code

Every registered method of the time is fitted on small data (scikit-learn's digits, tiny
networks) under several settings that between them take every branch of the training code
(batch orders, tolerance stop or none, SGD and Adam, the CDC paper variant, DCCF's Hutchinson
estimator, which draws random numbers, a reused pretrained autoencoder), and on USPS with the
benchmark presets cut to a few epochs. Runs stopped mid-pretraining and mid-fine-tuning are
resumed from their checkpoint. For each case the script records sha256 digests of the labels,
the centres, ``predict_proba``, the embedding, the pretrained autoencoder and the history rows,
and the labels handed to the callbacks at each fine-tuning target update. ``--compare`` exits
non-zero and names every case whose digest differs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from benchdata import add_data_dir_argument, has, load_npz  # noqa: E402
from deepclust.models import Callback, DeepClusterer, TrainingCancelled  # noqa: E402

DIGITS_NET = {"hidden_dims": [64, 32], "embedding_dim": 8, "pretrain_epochs": 4, "pretrain_batch_size": 128,
              "batch_size": 128, "kmeans_n_init": 3}
DEC_TINY = {**DIGITS_NET, "maxiter": 150, "update_interval": 20}
CDC_TINY = {**DIGITS_NET, "maxiter": 60, "update_interval": 15, "batch_size": 64}
DCCF_TINY = {**DIGITS_NET, "max_epochs": 4}

# name -> (method, dataset, params, extra): extra may hold "stop_after" (checkpoints before a
# cancel, then resume), "pretrained" (the case whose fitted model seeds this one), "memmap"
# (train from a numpy.memmap, read batch by batch).
CASES = {
    "kmeans": ("kmeans", "digits", {"n_init": 3}, {}),
    "dec": ("dec", "digits", DEC_TINY, {}),
    "dec-tol0-sgd-pretrain": ("dec", "digits", {**DEC_TINY, "tol": 0.0, "pretrain_optimizer": "sgd",
                                               "pretrain_lr": 0.1, "init": "variance_scaling"}, {}),
    "dec-tol-stop": ("dec", "digits", {**DEC_TINY, "tol": 0.05, "maxiter": 400}, {}),
    "dec-tol-stop-mid-epoch": ("dec", "digits", {**DEC_TINY, "tol": 0.065, "maxiter": 400,
                                                "update_interval": 20}, {}),
    "dec-memmap": ("dec", "digits", DEC_TINY, {"memmap": True}),
    "idec": ("idec", "digits", DEC_TINY, {}),
    "idec-sgd": ("idec", "digits", {**DEC_TINY, "optimizer": "sgd", "lr": 0.1, "momentum": 0.99}, {}),
    "idec-from-dec": ("idec", "digits", DEC_TINY, {"pretrained": "dec"}),
    "cdc-code": ("cdc", "digits", CDC_TINY, {}),
    "cdc-paper": ("cdc", "digits", {**CDC_TINY, "variant": "paper"}, {}),
    "dccf": ("dccf", "digits", DCCF_TINY, {}),
    "dccf-hutchinson-shuffle": ("dccf", "digits", {**DCCF_TINY, "jacobian": "hutchinson", "focal": "soft",
                                                   "batch_order": "shuffle", "tol": None,
                                                   "contractive_in_pretrain": True}, {}),
    "dec-resume-pretrain": ("dec", "digits", {**DEC_TINY, "tol": 0.0}, {"stop_after": 2}),
    "idec-resume-finetune": ("idec", "digits", {**DEC_TINY, "tol": 0.0}, {"stop_after": 7}),
    "cdc-resume-finetune": ("cdc", "digits", {**CDC_TINY, "variant": "paper"}, {"stop_after": 6}),
    "dccf-resume-finetune": ("dccf", "digits", {**DCCF_TINY, "tol": None, "batch_order": "shuffle"},
                             {"stop_after": 6}),
}
# The benchmark presets themselves (benchmarks/presets/<method>.json, "usps"), cut short.
USPS_CUTS = {
    "dec": {"pretrain_epochs": 2, "maxiter": 300},
    "idec": {"pretrain_epochs": 2, "maxiter": 300},
    "cdc": {"pretrain_epochs": 1, "maxiter": 200},
    "dccf": {"pretrain_epochs": 2, "max_epochs": 2},
    "kmeans": {"n_init": 3},
}


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


class Recorder(Callback):
    """The labels of each fine-tuning target update; checkpoints; a cancel after ``stop_after``."""

    def __init__(self, stop_after=None):
        self.updates, self.states, self.stop_after = [], [], stop_after

    def on_target_update(self, iteration, labels, label_change):  # the callback before on_labels
        self.updates.append([iteration, digest(labels), label_change])

    def on_labels(self, phase, iteration, labels, label_change):
        if phase == "finetune":
            self.updates.append([iteration, digest(labels), label_change])

    def on_checkpoint(self, state):
        if self.stop_after is not None:
            self.states.append(state)

    def should_stop(self):
        return self.stop_after is not None and len(self.states) >= self.stop_after


def load(name: str, data_dir: Path) -> np.ndarray:
    if name == "digits":
        return load_digits().data.astype(np.float32)
    return load_npz(name, data_dir)["x"]


def fingerprint(est: DeepClusterer, X, updates) -> dict:
    pretrained = est.pretrained_state_ or {}
    return {
        "labels": digest(est.labels_),
        "centers": digest(est.cluster_centers_),
        "proba": digest(est.predict_proba(X)),
        "embedding": digest(est.transform(X)),
        "pretrained": digest(*[pretrained[k].numpy() for k in sorted(pretrained)]),
        "history": hashlib.sha256(json.dumps(est.history_).encode()).hexdigest()[:16],
        "finetune_epochs": sum(1 for h in est.history_ if h["phase"] == "finetune"),
        "target_updates": updates,
    }


def run_case(name, method, X, params, extra, fitted, scaling="minmax") -> tuple[dict, DeepClusterer]:
    make = lambda: DeepClusterer(method, 10, random_state=0, scaling=scaling, **params)  # noqa: E731
    if "stop_after" in extra:
        stopper = Recorder(extra["stop_after"])
        try:
            make().fit(X, callbacks=[stopper])
            raise SystemExit(f"{name}: the run was not cancelled")
        except TrainingCancelled:
            pass
        rec = Recorder()
        est = make().fit(X, callbacks=[rec], resume_from=stopper.states[-1])
        return {**fingerprint(est, X, rec.updates), "resumed_phase": stopper.states[-1]["phase"]}, est
    rec = Recorder()
    source = X
    if extra.get("memmap"):
        path = Path(tempfile.mkdtemp()) / "x.npy"
        np.save(path, X)
        source = np.load(path, mmap_mode="r")
    est = make().fit(source, callbacks=[rec], pretrained=fitted.get(extra.get("pretrained")))
    return fingerprint(est, X, rec.updates), est


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the fingerprints here (JSON)")
    ap.add_argument("--compare", type=Path, help="fingerprints recorded earlier; exit 1 on any difference")
    add_data_dir_argument(ap)
    ap.add_argument("--only", nargs="*", help="case names to run (default: all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # one fixed thread count: the sums are then reduced in one order

    results, fitted = {}, {}
    digits = load("digits", args.data_dir)
    for name, (method, dataset, params, extra) in CASES.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        results[name], fitted[name] = run_case(name, method, digits, params, extra, fitted)
        print(f"{name}: {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)
    if has("usps.npz", args.data_dir):
        usps = load("usps", args.data_dir)
        for method, cut in USPS_CUTS.items():
            name = f"usps-{method}"
            if args.only and name not in args.only:
                continue
            preset = json.loads((ROOT / "presets" / f"{method}.json").read_text())["usps"]
            start = time.perf_counter()
            results[name], _ = run_case(name, method, usps, {**preset["params"], **cut}, {}, {},
                                        scaling=preset.get("scaling", "auto"))
            print(f"{name}: {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)

    if args.out:
        args.out.write_text(json.dumps({"torch": torch.__version__, "cases": results}, indent=1) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())["cases"]
        differ = [name for name in results if before.get(name) != results[name]]
        missing = sorted(set(before) - set(results)) if not args.only else []
        for name in differ:
            keys = [k for k in results[name] if before.get(name, {}).get(k) != results[name][k]]
            print(f"DIFFERS {name}: {', '.join(keys)}")
        for name in missing:
            print(f"MISSING {name}")
        print(json.dumps({"cases": len(results), "identical": len(results) - len(differ),
                          "differ": differ, "missing": missing}))
        return 1 if differ or missing else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
