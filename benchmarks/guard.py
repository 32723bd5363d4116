"""The guard against degenerate clusterings (issue #23): DECS runs that collapse without it.

    # DECS on the README's digits PNG archive with the README's settings (defaults, maxiter=2000)
    python benchmarks/guard.py digits-png --seeds 0 1 2
    # DECS on USPS after a weak pretraining (20 epochs), clustering cut to 2,000 iterations
    python benchmarks/guard.py usps --seeds 0 1 2 --set pretrain_epochs=20 maxiter=2000

Each run reports the k-means start (the INIT labels, the clustering phase's first state), the
result with ``guard="restore"`` (the default) and what the guard did. ``--compare-off`` also
trains with ``guard="off"`` and says whether the two results are bit-identical (they must be
when the guard did not act). **Labels only score**; the guard sees cluster sizes.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

sys.path.insert(0, str(ROOT))
from benchdata import add_data_dir_argument, load_npz  # noqa: E402
from deepclust.models import Callback, DeepClusterer  # noqa: E402
from deepclust.models.metrics import external_metrics  # noqa: E402



def digits_png() -> tuple[np.ndarray, np.ndarray]:
    """The README's archive: each 8x8 digit as ``image * 255 / 16`` in uint8, one PNG per image
    in a folder per class, zipped; decoded back as the upload does (1x8x8 uint8, lossless)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, (image, digit) in enumerate(zip(d.images, d.target)):
            png = io.BytesIO()
            Image.fromarray((image * 255 / 16).astype("uint8")).save(png, format="PNG")
            z.writestr(f"{digit}/{i}.png", png.getvalue())
    xs, ys = [], []
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        for name in z.namelist():
            xs.append(np.asarray(Image.open(io.BytesIO(z.read(name))).convert("L"))[None])
            ys.append(int(name.split("/")[0]))
    return np.stack(xs), np.array(ys)


def usps(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    d = load_npz("usps", data_dir)
    return d["x"].reshape(-1, *d["shape"]), d["y"]


class Labels(Callback):
    def __init__(self):
        self.init = None

    def on_labels(self, phase, iteration, labels, label_change):
        if phase == "init":
            self.init = np.asarray(labels).copy()


def run(x, y, seed, params, guard) -> dict:
    cb = Labels()
    est = DeepClusterer("decs", 10, random_state=seed, device="cpu", guard=guard, **params)
    start = time.perf_counter()
    est.fit(x, callbacks=[cb])
    seconds = time.perf_counter() - start
    start_scores = external_metrics(y, cb.init)
    final = external_metrics(y, est.labels_)
    return {"seed": seed, "guard": guard, "seconds": round(seconds, 1),
            "kmeans_start": {k: round(v, 4) for k, v in start_scores.items()},
            "result": {k: round(v, 4) for k, v in final.items()},
            "health": est.health_, "warnings": [{"code": w["code"], "details": {k: v for k, v in w["details"].items()
                                                                               if k != "table"}}
                                                for w in est.warnings_],
            "finetune_epochs": sum(1 for r in est.history_ if r["phase"] == "finetune"),
            "acc_ge_start": bool(final["acc"] >= start_scores["acc"]),
            "_labels": est.labels_, "_proba": est.predict_proba(x)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", choices=["digits-png", "usps"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="NAME=VALUE")
    ap.add_argument("--compare-off", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    add_data_dir_argument(ap)
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = {"maxiter": 2000} if args.data == "digits-png" else {}
    for pair in args.overrides:
        key, _, value = pair.partition("=")
        params[key] = json.loads(value)
    x, y = digits_png() if args.data == "digits-png" else usps(args.data_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        row = run(x, y, seed, params, "restore")
        if args.compare_off:
            off = run(x, y, seed, params, "off")
            row["identical_to_guard_off"] = bool(np.array_equal(off["_labels"], row["_labels"])
                                                 and np.array_equal(off["_proba"], row["_proba"]))
            row["guard_off_result"] = off["result"]
        row = {k: v for k, v in row.items() if not k.startswith("_")}
        row.update({"data": args.data, "params": params, "date": time.strftime("%Y-%m-%d"),
                    "device": f"cpu, {torch.get_num_threads()} thread(s)"})
        print(json.dumps(row), flush=True)
        with open(args.out / f"guard-decs-{args.data}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
