"""K without labels: each criterion of ``models.k_estimation`` on pretrained embeddings.

    # 1. pretrain (once per dataset, method and seed) and cache the pretrained embedding
    python benchmarks/k_selection.py embed --dataset digits --method dec --seeds 0 1 2
    # 2. every criterion on every cached embedding, K in 5..15: the K each picks, and its cost
    python benchmarks/k_selection.py k --datasets digits usps mnist_test --methods dec idec --seeds 0 1 2

Settings come from ``benchmarks/presets/<method>.json`` (digits uses the ``usps`` preset, MNIST's
10k test split the ``mnist`` one), ``--set name=value`` overrides them (say so when reporting).
Embeddings are cached under ``--cache`` (default ``benchmarks/.cache/k_selection``). **The labels
are used only to report**: each criterion sees the embedding and nothing else; the true K is
printed beside the choice.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from deepclust.models import DeepClusterer  # noqa: E402
from deepclust.models import selection as sel  # noqa: E402
from deepclust.models.k_estimation import K_CRITERIA, REPRODUCIBILITY, estimate_k  # noqa: E402

sys.path.insert(0, str(ROOT))
from benchdata import add_data_dir_argument, load_npz  # noqa: E402


def load(name: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``digits`` (scikit-learn, 1,797), ``usps`` (all 9,298), ``mnist_test`` (MNIST's 10k test
    split), ``mnist`` (all 70k)."""
    if name == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return (x / 16.0).astype(np.float32), y
    d = load_npz(name, data_dir)  # mnist_test: the test split of mnist.npz
    return d["x"], d["y"]


def preset_params(method: str, dataset: str, overrides: dict) -> dict:
    presets = json.loads((ROOT / "presets" / f"{method}.json").read_text())
    name = {"digits": "usps", "mnist_test": "mnist"}.get(dataset, dataset)
    return {**presets[name]["params"], **overrides}


def parse_overrides(pairs) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def embedding_file(cache: Path, dataset: str, method: str, seed: int, overrides: dict) -> Path:
    tag = "-".join([dataset, method, f"s{seed}"] + [f"{k}={v}" for k, v in sorted(overrides.items())])
    return cache / f"{tag.replace('/', '_').replace(' ', '')}.npz"


def pretrained_embedding(x, method: str, params: dict, seed: int) -> tuple[np.ndarray, float]:
    """The embedding of ``x`` by the method's autoencoder after its pretraining alone, and the
    seconds the pretraining took (the fit's clustering part is cut to one step and not used)."""
    est = DeepClusterer(method, 2, random_state=seed, device="cpu",
                        **{**params, "maxiter": 1, "kmeans_n_init": 1})
    start = time.perf_counter()
    est.fit(x)
    seconds = time.perf_counter() - start
    est.model_.autoencoder.load_state_dict(est.pretrained_state_)
    return est.transform(x), seconds


def embed(args) -> None:
    overrides = parse_overrides(args.overrides)
    x, _ = load(args.dataset, args.data_dir)
    args.cache.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        file = embedding_file(args.cache, args.dataset, args.method, seed, overrides)
        if file.exists():
            continue
        z, seconds = pretrained_embedding(x, args.method, preset_params(args.method, args.dataset, overrides), seed)
        np.savez(file, z=z, meta=json.dumps({"seconds": round(seconds, 1), "overrides": overrides,
                                             "device": device_name(), "date": time.strftime("%Y-%m-%d")}))
        print(json.dumps({"dataset": args.dataset, "method": args.method, "seed": seed, "n": len(z),
                          "pretrain_seconds": round(seconds, 1),
                          "sha256": hashlib.sha256(z.tobytes()).hexdigest()[:16]}), flush=True)


def k_recovery(args) -> None:
    """Every criterion on every cached embedding; one JSON line per (dataset, method, seed), then
    a summary per dataset and criterion. Labels only give the true K to print beside."""
    overrides = parse_overrides(args.overrides)
    out = []
    for dataset in args.datasets:
        _, y = load(dataset, args.data_dir)
        true_k = int(len(np.unique(y)))
        ds_overrides = {**overrides, **({"pretrain_epochs": 50} if dataset == "mnist_test" and args.mnist_cut else {})}
        for method in args.methods:
            for seed in args.seeds:
                file = embedding_file(args.cache, dataset, method, seed, ds_overrides)
                if not file.exists():
                    print(json.dumps({"missing": str(file)}), flush=True)
                    continue
                with np.load(file, allow_pickle=False) as d:
                    z, meta = d["z"], json.loads(str(d["meta"]))
                row = {"dataset": dataset, "method": method, "seed": seed, "n": len(z), "true_k": true_k,
                       "pretrain_seconds": meta["seconds"], "overrides": meta["overrides"], "chosen": {},
                       "seconds": {}, "table": None}
                for criterion in K_CRITERIA:
                    result = estimate_k(z, tuple(args.k), criterion, seed=seed, columns=())
                    row["chosen"][criterion] = result.chosen
                    row["seconds"][criterion] = result.seconds[criterion]
                    row["table"] = ([{**r} for r in result.table] if row["table"] is None else
                                    [{**a, **b} for a, b in zip(row["table"], result.table)])
                rep = estimate_k(z, tuple(args.k), K_CRITERIA[0], seed=seed, columns=(REPRODUCIBILITY,))
                row["chosen"][REPRODUCIBILITY] = sel.choose_k(rep.table, REPRODUCIBILITY)
                row["seconds"][REPRODUCIBILITY] = rep.seconds[REPRODUCIBILITY]
                row["table"] = [{**a, REPRODUCIBILITY: b[REPRODUCIBILITY]} for a, b in zip(row["table"], rep.table)]
                row["table"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                                for r in row["table"]]
                print(json.dumps({k: v for k, v in row.items() if k != "table"}), flush=True)
                out.append(row)
    summary = {}
    for row in out:
        for criterion, k in row["chosen"].items():
            summary.setdefault(row["dataset"], {}).setdefault(criterion, []).append(k)
    print(json.dumps({"summary": summary, "k": args.k, "device": device_name(), "date": time.strftime("%Y-%m-%d")}))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "k-selection.jsonl", "a") as f:
        for row in out:
            f.write(json.dumps({**row, "k": args.k, "date": time.strftime("%Y-%m-%d")}) + "\n")


def device_name() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("embed")
    p.add_argument("--dataset", required=True, help="digits, usps, mnist_test or mnist")
    p.add_argument("--method", default="dec")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="NAME=VALUE")
    q = sub.add_parser("k")
    q.add_argument("--datasets", nargs="+", default=["digits", "usps", "mnist_test"])
    q.add_argument("--methods", nargs="+", default=["dec"],
                   help="whose cached embeddings; DEC and IDEC pretrain the same network the same way")
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--k", type=int, nargs=2, default=[5, 15], metavar=("MIN", "MAX"))
    q.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="NAME=VALUE")
    q.add_argument("--mnist-cut", action=argparse.BooleanOptionalAction, default=True,
                   help="MNIST's embeddings are those pretrained 50 epochs (the default here)")
    q.add_argument("--out", type=Path, default=ROOT / "results")
    for q in (p, q):
        q.add_argument("--threads", type=int, default=1)
        add_data_dir_argument(q)
        q.add_argument("--cache", type=Path, default=ROOT / ".cache" / "k_selection")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "embed":
        embed(args)
    else:
        k_recovery(args)


if __name__ == "__main__":
    main()
