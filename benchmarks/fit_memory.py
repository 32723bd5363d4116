"""Peak memory of ``DeepClusterer.fit`` against the size of its data (issue #12).

    python benchmarks/fit_memory.py                       # MNIST 70k×784 float32, DEC, in memory and memmap
    python benchmarks/fit_memory.py --method idec --pretrain-epochs 2

Each case runs in a fresh process: the data is loaded (or memory-mapped), torch and the library
imported and the network built, then the peak RSS (VmHWM) is reset and ``fit`` runs: pretraining,
the k-means initialisation on the whole embedding (where the peak used to be), target updates
and the final assignment. The floor beside it is the same DEC written by hand in PyTorch (same
network, batches and whole-data passes): what the runtime itself costs. The paper's network and batch size, with few epochs and iterations: the
peak comes from whole-data passes and the per-batch working set, not from how long training runs.

Goals: in memory, peak RSS during fit ≤ 2× the data (the data itself plus at most as much again);
memory-mapped, ≤ the data + 300 MB, counting the file's pages the process has touched.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))
from benchdata import add_data_dir_argument, load_npz  # noqa: E402

MiB = 2**20


def _status(field: str) -> float:
    """A ``/proc/self/status`` field in MiB (VmRSS, VmHWM, RssAnon, RssFile)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def bare_fit(x: np.ndarray, pretrain_epochs: int, maxiter: int) -> None:
    """The floor: DEC written by hand in PyTorch, the same network, batches and whole-data passes."""
    import torch
    from sklearn.cluster import KMeans
    from torch import nn

    torch.manual_seed(0)
    dims = [x.shape[1], 500, 500, 2000, 10]
    layers = [m for a, b in zip(dims[:-1], dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1]
    encoder = nn.Sequential(*layers)
    rdims = dims[::-1]
    decoder = nn.Sequential(*[m for a, b in zip(rdims[:-1], rdims[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1])
    data = torch.from_numpy(x)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], 1e-3)
    for _ in range(pretrain_epochs):
        for idx in torch.randperm(len(data)).split(256):
            batch = data[idx]
            loss = nn.functional.mse_loss(decoder(encoder(batch)), batch)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def embed():
        with torch.no_grad():
            return torch.cat([encoder(c) for c in data.split(4096)])

    centers = nn.Parameter(torch.as_tensor(KMeans(10, n_init=20, random_state=0).fit(embed().numpy()).cluster_centers_))
    opt = torch.optim.SGD([*encoder.parameters(), centers], 0.01, momentum=0.9)
    for it in range(maxiter):
        if it % max(1, maxiter // 3) == 0:
            q = 1 / (1 + torch.cdist(embed(), centers.detach()) ** 2)
            q = q / q.sum(1, keepdim=True)
            p = q**2 / q.sum(0)
            p = p / p.sum(1, keepdim=True)
        idx = torch.arange(it * 256, (it + 1) * 256) % len(data)
        qb = 1 / (1 + torch.cdist(encoder(data[idx]), centers) ** 2)
        qb = qb / qb.sum(1, keepdim=True)
        loss = nn.functional.kl_div(qb.log(), p[idx], reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()


def child(path: str, layout: str, method: str, pretrain_epochs: int, maxiter: int) -> None:
    import torch

    from deepclust.models import DeepClusterer

    torch.set_num_threads(os.cpu_count() or 1)
    x = np.load(path, mmap_mode="r" if layout == "memmap" else None)
    if layout == "memory-tenth":
        x = x[: len(x) // 10]
    if layout != "memmap":
        x = np.ascontiguousarray(x)  # touch every page: the data is resident before the reset
    est = DeepClusterer(method, 10, random_state=0, pretrain_epochs=pretrain_epochs, maxiter=maxiter,
                        update_interval=max(1, maxiter // 3), tol=0.0)
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM: the peak from here on
    if layout == "bare":
        bare_fit(x, pretrain_epochs, maxiter)
    else:
        est.fit(x)
    print(json.dumps({"rss_before_mib": before, "peak_mib": _status("VmHWM"),
                      "rss_after_mib": _status("VmRSS"), "rss_file_after_mib": _status("RssFile")}))


def measure(path: Path, layout: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", str(path), layout, args.method,
           str(args.pretrain_epochs), str(args.maxiter)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="dec")
    ap.add_argument("--pretrain-epochs", type=int, default=1)
    ap.add_argument("--maxiter", type=int, default=600)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    add_data_dir_argument(ap)
    args = ap.parse_args(argv)
    if args.child:
        path, layout, method, epochs, maxiter = args.child
        return child(path, layout, method, int(epochs), int(maxiter))

    raw = load_npz("mnist", args.data_dir)["x"]
    x = raw.reshape(len(raw), -1).astype(np.float32) / 255
    del raw
    data_mib = x.nbytes / MiB
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mnist.npy"
        np.save(path, x)
        del x
        print(f"data: MNIST {data_mib:.0f} MiB float32; {args.method}, pretrain_epochs={args.pretrain_epochs}, "
              f"maxiter={args.maxiter}")
        print("| layout | data MiB | RSS before fit MiB | peak RSS during fit MiB | peak − before MiB | goal | met |")
        print("|---|---|---|---|---|---|---|")
        for layout in ("bare", "memory", "memory-tenth", "memmap"):
            r = measure(path, layout, args)
            extra = r["peak_mib"] - r["rss_before_mib"]
            if layout == "bare":
                goal, met = "(floor: DEC by hand in PyTorch, in memory)", None
            elif layout == "memory-tenth":
                goal, met = "(the first 10% of the rows: what does not grow with the data)", None
            elif layout == "memory":
                # the data is part of "before"; the goal bounds the peak by 2× the data
                goal, met = f"extra ≤ {data_mib:.0f}", extra <= data_mib
            else:
                goal, met = f"peak − before ≤ {data_mib:.0f} + 300", extra <= data_mib + 300
            mib = data_mib / (10 if layout == "memory-tenth" else 1)
            print(f"| {layout} | {mib:.0f} | {r['rss_before_mib']:.0f} | {r['peak_mib']:.0f} | {extra:.0f} |"
                  f" {goal} | {'' if met is None else 'yes' if met else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
