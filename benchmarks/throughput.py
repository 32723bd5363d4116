"""Pretraining throughput of the library against a bare PyTorch loop, in the same process.

    python benchmarks/throughput.py --dataset mnist --epochs 3 --repeats 3

Both train the same D-500-500-2000-10 autoencoder with the same batch size, optimiser and
shuffled order on the same device, from the same initial weights; each side runs ``--repeats``
times, alternating, and the best samples/s of each is compared (the target is a ratio ≥ 0.95).
``--clock cpu`` counts this process's CPU seconds instead of wall seconds: on a CPU shared with
other work, waiting for a core then counts for neither side (use it with ``--threads 1``).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from deepclust.models.networks.mlp import ClusterModel, DenseAutoencoder  # noqa: E402
from deepclust.models.preprocessing import Scaler  # noqa: E402
from deepclust.models.training import PretrainPhase, Run, make_optimizer, reconstruction_objective, train  # noqa: E402
from deepclust.models.training.callbacks import CallbackList  # noqa: E402
from deepclust.models.training.data import ArrayData  # noqa: E402
from deepclust.models.training.device import resolve_device  # noqa: E402

sys.path.insert(0, str(ROOT))
from benchdata import add_data_dir_argument, load_npz  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


clock = time.perf_counter  # or time.process_time: --clock cpu


def library(ae, x, scaler, device, epochs, batch_size, lr):
    """The pretraining phase in the library's training loop, as every deep method runs it."""
    data = ArrayData(x, scaler, device)
    model = ClusterModel(ae, 2, ae.embedding_dim).to(device)
    phase = PretrainPhase(reconstruction_objective, lambda m: make_optimizer(m.parameters(), "adam", lr, 0.9),
                          epochs=epochs, batch_size=batch_size)
    run = Run(CallbackList(), base_state={})
    sync(device)
    start = clock()
    train(model, data, [phase], run, seed=0)
    sync(device)
    return len(x) * epochs / (clock() - start)


def bare(ae, x, scaler, device, epochs, batch_size, lr):
    """What a notebook would write: the data as one tensor on the device, index, step."""
    data = torch.as_tensor(x, dtype=torch.float32, device=device) * float(scaler.scale)
    optimizer = torch.optim.Adam(ae.parameters(), lr=lr)
    sync(device)
    start = clock()
    for epoch in range(epochs):
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch)).to(device)
        for i in range(0, len(data), batch_size):
            batch = data[order[i:i + batch_size]]
            loss = torch.nn.functional.mse_loss(ae(batch)[1], batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    sync(device)
    return len(x) * epochs / (clock() - start)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--samples", type=int, default=None, help="use the first N samples only")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    add_data_dir_argument(ap)
    args = ap.parse_args(argv)
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)

    x = load_npz(args.dataset, args.data_dir)["x"][:args.samples]
    device = resolve_device(args.device)
    scaler = Scaler.fit(x, "auto")
    if scaler.kind not in ("none", "divide255"):
        raise SystemExit("the bare loop only replays 'none'/'divide255' scaling")
    torch.manual_seed(0)
    initial = DenseAutoencoder(x[0].size, [500, 500, 2000], 10).to(device)
    results = {"library": [], "bare": []}
    for _ in range(args.repeats):
        for name, fn in (("bare", bare), ("library", library)):
            results[name].append(fn(copy.deepcopy(initial), x, scaler, device, args.epochs, args.batch_size, 1e-3))
    best = {k: max(v) for k, v in results.items()}
    print(json.dumps({
        "dataset": args.dataset, "n_samples": len(x), "epochs": args.epochs, "batch_size": args.batch_size,
        "clock": args.clock,
        "device": str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda"
                                 else f" ({torch.get_num_threads()} threads)"),
        "library_samples_per_s": round(best["library"]), "bare_samples_per_s": round(best["bare"]),
        "ratio": round(best["library"] / best["bare"], 3),
        "all": {k: [round(s) for s in v] for k, v in results.items()},
    }))


if __name__ == "__main__":
    main()
