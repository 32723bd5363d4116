"""Seed robustness and K recovery with the label-free selection of ``models.selection``.

    # restarts of one K: single runs, the label-free chosen run, the consensus, best-of-N (labels!)
    python benchmarks/sweeps.py restarts --method dccf --dataset usps --seeds 0 1 2 3 4
    # K recovery: a sweep over K with one pretraining per seed, the recommended K by each criterion
    python benchmarks/sweeps.py k --method idec --dataset digits --k 5 15 --seeds 0 1 2

Settings come from ``benchmarks/presets/<method>.json`` (``--preset``, default the dataset name;
``digits``, scikit-learn's bundled 8x8 digits scaled to [0, 1], uses ``--preset usps``), with
``--set name=value`` overrides. Every run's labels and criteria are cached under ``--cache``
(default ``benchmarks/.cache``), so an interrupted benchmark resumes where it stopped and the
summary can be recomputed for free. **The labels are used only to score**: the choice of run
and of K sees the data, the runs' labels and their embeddings, nothing else. The best-of-N
figure is the one number that does use the labels, and is named so.
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

from deepclust.models import DeepClusterer  # noqa: E402
from deepclust.models import selection as sel  # noqa: E402
from deepclust.models.metrics import external_metrics  # noqa: E402
from deepclust.models.restarts import choose_restart, evaluated_run  # noqa: E402

sys.path.insert(0, str(ROOT))
from benchdata import add_data_dir_argument, load_npz  # noqa: E402


def load(name: str, data_dir: Path, samples: int | None) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x = (x / 16.0).astype(np.float32)
    else:
        d = load_npz(name, data_dir)
        x, y = d["x"], d["y"]
    if samples is not None and samples < len(x):  # a fixed, seeded subset: the same for every run
        idx = np.sort(np.random.default_rng(12345).choice(len(x), size=samples, replace=False))
        x, y = x[idx], y[idx]
    return x, y


def settings(args) -> tuple[str, dict]:
    preset_name = args.preset or ("usps" if args.dataset == "digits" else args.dataset)
    presets = json.loads((ROOT / "presets" / f"{args.method}.json").read_text())
    if preset_name not in presets:
        raise SystemExit(f"no preset {preset_name!r} for {args.method}; have "
                         f"{[k for k in presets if not k.startswith('_')]} (use --preset)")
    preset = presets[preset_name]
    overrides = {}
    for pair in args.overrides:
        key, _, value = pair.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return preset_name, {"preset": preset, "overrides": overrides,
                         "params": {**preset["params"], **overrides}, "scaling": preset.get("scaling", "auto")}


def cache_dir(args, preset_name, conf) -> Path:
    tag = "-".join([args.method, args.dataset, preset_name] + [f"{k}={v}" for k, v in sorted(conf["overrides"].items())]
                   + ([f"n{args.samples}"] if args.samples else []))
    path = args.cache / tag.replace("/", "_").replace(" ", "")
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_once(args, conf, x, k, seed, cache: Path, pretrained_dir: Path | None = None) -> sel.Run:
    """One fit, or its cached labels and criteria. With ``pretrained_dir``: reuse (or save) that
    seed's autoencoder."""
    file = cache / f"k{k}-s{seed}.npz"
    if file.exists():
        with np.load(file, allow_pickle=False) as d:
            meta = json.loads(str(d["meta"]))
            return sel.Run(k, d["labels"], seed=seed, criteria=meta["criteria"])
    pretrained = None
    if pretrained_dir is not None and (pretrained_dir / "manifest.json").exists():
        pretrained = DeepClusterer.load(pretrained_dir, device="cpu")
    est = DeepClusterer(args.method, k, random_state=seed, device=args.device, scaling=conf["scaling"],
                        **conf["params"])
    start = time.perf_counter()
    est.fit(x, pretrained=pretrained)
    seconds = time.perf_counter() - start
    if pretrained_dir is not None and pretrained is None and getattr(est, "pretrained_state_", None) is not None:
        est.save(pretrained_dir)
    run = evaluated_run(est, x, seed)
    np.savez(file, labels=run.labels, meta=json.dumps({"criteria": run.criteria, "seconds": round(seconds, 1)}))
    print(json.dumps({"k": k, "seed": seed, "seconds": round(seconds, 1)}), flush=True)
    return run


def device_name(args) -> str:
    if torch.cuda.is_available() and args.device != "cpu":
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def has_values(runs, x, criterion: str) -> bool:
    """Whether the runs can be compared by ``criterion``: Stadion is scored only for the sweeps
    that select by it (the runs cached here carry none), so it is left out of ``chosen_by``."""
    try:
        choose_restart(runs, x, criterion)
    except ValueError:
        return False
    return True


def restarts(args) -> dict:
    preset_name, conf = settings(args)
    x, y = load(args.dataset, args.data_dir, args.samples)
    k = args.n_clusters or conf["preset"]["n_clusters"]
    cache = cache_dir(args, preset_name, conf)
    runs = [run_once(args, conf, x, k, seed, cache) for seed in args.seeds]

    chosen, table = choose_restart(runs, x, "stability")
    by_criterion = {c: choose_restart(runs, x, c)[0] for c in sel.CRITERIA
                    if c != "stability" and has_values(runs, x, c)}
    consensus = sel.consensus_labels([r.labels for r in runs], k, random_state=0)
    scores = [external_metrics(y, r.labels) for r in runs]  # reporting only, from here on
    accs = np.array([s["acc"] for s in scores])
    return {
        "benchmark": "restarts", "method": args.method, "dataset": args.dataset, "preset": preset_name,
        "overrides": conf["overrides"], "n_samples": int(len(x)), "n_clusters": k, "seeds": args.seeds,
        "single_acc": [round(float(a), 4) for a in accs],
        "single_acc_mean": round(float(accs.mean()), 4), "single_acc_std": round(float(accs.std()), 4),
        "agreement": [round(float(r["stability"]), 4) for r in table],
        "selected_seed": args.seeds[chosen], "selected_acc": round(float(accs[chosen]), 4),
        "selected_nmi": round(scores[chosen]["nmi"], 4),
        # the run each other criterion would have chosen (each choice label-free, as the default's)
        "chosen_by": {c: {"seed": args.seeds[i], "acc": round(float(accs[i]), 4)} for c, i in by_criterion.items()},
        "consensus_acc": round(external_metrics(y, consensus)["acc"], 4),
        "consensus_nmi": round(external_metrics(y, consensus)["nmi"], 4),
        "best_of_n_acc_USES_LABELS": round(float(accs.max()), 4),
        "goal_selected_ge_mean_plus_std": bool(accs[chosen] >= accs.mean() + accs.std()),
        "device": device_name(args), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }


def k_recovery(args) -> dict:
    preset_name, conf = settings(args)
    x, y = load(args.dataset, args.data_dir, args.samples)
    ks = list(range(args.k[0], args.k[1] + 1))
    cache = cache_dir(args, preset_name, conf)
    runs = []
    for seed in args.seeds:
        ae = cache / f"autoencoder-s{seed}"
        for k in ks:
            runs.append(run_once(args, conf, x, k, seed, cache, pretrained_dir=ae))
    selection = sel.select(runs, x, "stability")
    recommended = {c: sel.choose_k(selection.table, c) for c in sel.CRITERIA}
    rows = []
    for run, row in zip(runs, selection.table):
        ext = external_metrics(y, run.labels)  # reporting only
        rows.append({**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k != "key"},
                     "acc": round(ext["acc"], 4), "nmi": round(ext["nmi"], 4)})
    return {
        "benchmark": "k", "method": args.method, "dataset": args.dataset, "preset": preset_name,
        "overrides": conf["overrides"], "n_samples": int(len(x)), "true_k": int(len(np.unique(y))),
        "k": ks, "seeds": args.seeds, "recommended": recommended,
        "stability_by_k": {k: (round(v, 4) if v is not None else None) for k, v in selection.scores.items()},
        "device": device_name(args), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "table": rows,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="benchmark", required=True)
    for name in ("restarts", "k"):
        p = sub.add_parser(name)
        p.add_argument("--method", required=True)
        p.add_argument("--dataset", required=True, help="usps, mnist (shared datasets) or digits (scikit-learn)")
        p.add_argument("--preset", help="key in presets/<method>.json; default: the dataset name")
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
        p.add_argument("--samples", type=int, help="a fixed random subset of this many points")
        p.add_argument("--device", default="auto")
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="NAME=VALUE")
        add_data_dir_argument(p)
        p.add_argument("--cache", type=Path, default=ROOT / ".cache")
        p.add_argument("--out", type=Path, default=ROOT / "results")
    sub.choices["restarts"].add_argument("--n-clusters", type=int, help="default: the preset's")
    sub.choices["k"].add_argument("--k", type=int, nargs=2, default=[5, 15], metavar=("MIN", "MAX"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    summary = restarts(args) if args.benchmark == "restarts" else k_recovery(args)
    print(json.dumps({k: v for k, v in summary.items() if k != "table"}))
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"sweeps-{args.benchmark}-{args.method}-{args.dataset}.jsonl"
    with open(args.out / name, "a") as f:
        f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
