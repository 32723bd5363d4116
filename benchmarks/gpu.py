"""Everything issue #26's part 2 measures on a GPU, in one run within a time budget.

    python benchmarks/gpu.py --device cuda --budget-s 480 --out $OUT      # on a GPU
    bash benchmarks/on_device.sh        # on a lent one: with table.py, in one call (device_kit.py)
    python benchmarks/gpu.py --device cpu --tiny --budget-s 120 --out /tmp/gpu-dry   # dry run

Sections, in this order (each one line of JSON or more in ``OUT/gpu.jsonl``, written and flushed
as soon as it is measured, so a run cut short keeps what it had):

``env``       the device (name, memory), torch/CUDA/cuDNN/numpy/scikit-learn versions, the speed
              settings ``auto`` resolves to (models/training/accel.py)
``ratio``     the library's pretraining loop against a bare PyTorch loop of the same network,
              batch, optimiser and data on the device; ``ratio`` = bare time / library time
              (1.0: no overhead; the goal is ≥ 0.95), and both per step
``accel``     ms per pretraining step and per IDEC fine-tuning step with each speed setting off
              and on (TF32, Adam single/foreach/fused, bf16 autocast, torch.compile / CUDA graphs),
              and a bare loop captured whole in a CUDA graph (the floor of per-step overhead)
``kmeans``    torch k-means against scikit-learn on the MNIST embedding (an autoencoder
              pretrained briefly here): seconds and inertia of each, at n_init 20
``predict``   predict throughput (rows/s on all rows, 70,000 on MNIST) and the 1-row latency
``service``   a full MNIST IDEC job at the paper's settings (benchmarks/presets/idec.json) through
              ``deepclust serve`` (SQLite, local runner): upload → job → labels, with the time
              of each phase, ACC/NMI, and the job's device line; the job is cancelled if the
              budget runs out (``cut``)
``seeds``     if time is left: DEC and IDEC on MNIST at the paper's settings, seeds 1 and 2,
              in-process (ACC, NMI, seconds)

``--tiny`` (the dry run) uses scikit-learn's digits, small networks and a few epochs everywhere.
Datasets come from ``--data-dir`` (default ``$DEEPCLUST_DATASETS``, else ``../shared/datasets``;
benchmarks/DATASETS.md); without ``mnist.npz`` there, digits are used and the line says so.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
# deepclust comes from the environment (installed, or the checkout's tree that on_device.sh puts
# on PYTHONPATH): the repository root itself holds only deepclust/__init__.py of it.
sys.path.insert(0, str(ROOT))
from benchdata import add_data_dir_argument, has, load_npz  # noqa: E402

SECTIONS = ("env", "ratio", "accel", "kmeans", "predict", "service", "seeds")
# `deepclust serve` through this Python: where deepclust is installed and where it is not (a lent
# GPU machine, where benchmarks/on_device.sh puts the checkout on PYTHONPATH).
DEEPCLUST = [sys.executable, "-m", "deepclust.app.cli"]


# -- plumbing ----------------------------------------------------------------------------------
class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.monotonic(), seconds

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class Sink:
    """JSON lines, each flushed and synced as soon as it is written."""

    def __init__(self, out: Path, budget: Budget):
        out.mkdir(parents=True, exist_ok=True)
        self.path, self.budget = out / "gpu.jsonl", budget
        self.file = open(self.path, "a")

    def write(self, section: str, **values) -> dict:
        row = {"section": section, "t_s": round(self.budget.elapsed(), 2), **values}
        self.file.write(json.dumps(row, default=_plain) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())
        print(json.dumps(row, default=_plain), flush=True)
        return row


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return str(value)


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_data(args) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(X, y, name): MNIST (uint8, 70,000 × 784) when present and not --tiny, else digits."""
    path = Path(args.data_dir) / "mnist.npz"
    if not args.tiny and has("mnist.npz", args.data_dir):
        d = load_npz("mnist", args.data_dir)  # checked: a different file stops the run
        return d["x"], d["y"], "mnist"
    from sklearn.datasets import load_digits

    digits = load_digits()
    note = "digits" if args.tiny else f"digits (no {path})"
    return (digits.data * (255 / 16)).astype(np.uint8), digits.target.astype(np.int64), note


def paper_params(method: str, tiny: bool) -> dict:
    """The MNIST preset of benchmarks/presets/<method>.json (the paper's settings), or a tiny cut."""
    preset = json.loads((ROOT / "presets" / f"{method}.json").read_text())["mnist"]["params"]
    if tiny:
        preset = {**preset, "hidden_dims": [64, 64, 128], "pretrain_epochs": 3, "maxiter": 60, "update_interval": 20,
                  "kmeans_n_init": 3}
    return preset


def network(tiny: bool) -> dict:
    return {"hidden_dims": [64, 64, 128] if tiny else [500, 500, 2000], "embedding_dim": 10}


# -- sections ----------------------------------------------------------------------------------
def section_env(args, sink, device, budget):
    import torch

    from deepclust.models.training import accel
    from deepclust.worker.environment import describe

    info = describe(str(device))
    sink.write("env", device=str(device), info=info, accel_auto=accel.resolve(device).__dict__,
               torch_threads=torch.get_num_threads(), tiny=args.tiny, budget_s=args.budget_s)


def _pretrain_setup(X, device, tiny, batch_size=256):
    import torch

    from deepclust.models.networks.mlp import ClusterModel, DenseAutoencoder
    from deepclust.models.preprocessing import Scaler
    from deepclust.models.training.data import ArrayData

    torch.manual_seed(0)
    net = network(tiny)
    model = ClusterModel(DenseAutoencoder(X.shape[1], net["hidden_dims"], net["embedding_dim"]), 10,
                         net["embedding_dim"]).to(device)
    data = ArrayData(X, Scaler.fit(X, "auto"), device)
    return model, data


def library_pretrain(X, device, tiny, epochs, batch_size=256, **accel_settings) -> float:
    """Seconds of ``epochs`` pretraining epochs through the library's loop (PretrainPhase)."""
    from deepclust.models.training import PretrainPhase, Run, accel, make_optimizer, reconstruction_objective, train
    from deepclust.models.training.callbacks import CallbackList

    with accel.override(**accel_settings):
        model, data = _pretrain_setup(X, device, tiny)
        phase = PretrainPhase(reconstruction_objective, lambda ae: make_optimizer(ae.parameters(), "adam", 1e-3),
                              epochs=epochs, batch_size=batch_size)
        phase.static_step = True
        run = Run(CallbackList([]), base_state={})
        with accel.training(model, [phase], device):
            sync(device)
            start = time.perf_counter()
            train(model, data, [phase], run, seed=0)
            sync(device)
            return time.perf_counter() - start


def bare_pretrain(X, device, tiny, epochs, batch_size=256, graph=False, **accel_settings) -> float:
    """The same epochs as a bare PyTorch loop: same network, init, data on the device, batch,
    Adam (the implementation the library resolves), shuffled order and on-device loss sums.
    ``graph``: forward, backward and the optimiser step captured whole in one CUDA graph."""
    import torch
    import torch.nn.functional as F

    from deepclust.models.training import accel

    with accel.override(**accel_settings):
        model, data = _pretrain_setup(X, device, tiny)
        ae, x_all, n = model.autoencoder, data._tensor, len(data)
        params = list(ae.parameters())
        settings = accel.resolve(device)
        options = accel.adam_options(params)
        if graph:
            options = {"capturable": True, **({"fused": True} if options.get("fused") else {"foreach": True})}
        opt = torch.optim.Adam(params, lr=1e-3, **options)
        steps = epochs * -(-n // batch_size)
        with accel.tf32(settings.tf32) if device.type == "cuda" else _null():
            if graph:
                return _graphed(ae, opt, x_all, n, batch_size, epochs, device)
            sync(device)
            start = time.perf_counter()
            total = torch.zeros((), device=device)
            for epoch in range(epochs):
                order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).to(device)
                for s in range(0, n, batch_size):
                    x = x_all.index_select(0, order[s:s + batch_size])
                    _, x_hat = ae(x)
                    loss = F.mse_loss(x_hat, x)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.detach() * len(x)
                float(total)
            sync(device)
            assert steps > 0
            return time.perf_counter() - start


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _graphed(ae, opt, x_all, n, batch_size, epochs, device) -> float:
    """Whole-step CUDA graph of full batches (the short last batch dropped): the per-step floor."""
    import torch
    import torch.nn.functional as F

    static_idx = torch.arange(batch_size, device=device)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up before capture
            opt.zero_grad(set_to_none=True)
            x = x_all.index_select(0, static_idx)
            F.mse_loss(ae(x)[1], x).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        x = x_all.index_select(0, static_idx)
        static_loss = F.mse_loss(ae(x)[1], x)
        static_loss.backward()
        opt.step()
    per_epoch = n // batch_size
    sync(device)
    start = time.perf_counter()
    total = torch.zeros((), device=device)
    for epoch in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).to(device)
        for s in range(per_epoch):
            static_idx.copy_(order[s * batch_size:(s + 1) * batch_size])
            graph.replay()
            total += static_loss.detach() * batch_size
        float(total)
    sync(device)
    return (time.perf_counter() - start) * (-(-n // batch_size)) / per_epoch  # per full epoch


def section_ratio(args, sink, device, budget, X):
    epochs = 1 if args.tiny else 3
    n = len(X)
    steps = epochs * -(-n // 256)
    library_pretrain(X, device, args.tiny, 1)  # warm-up: kernels, allocator, Adam state
    bare_pretrain(X, device, args.tiny, 1)
    lib, bare = [], []
    for _ in range(2 if args.tiny else 3):
        if lib and budget.left() < 30:
            break
        bare.append(bare_pretrain(X, device, args.tiny, epochs))
        lib.append(library_pretrain(X, device, args.tiny, epochs))
    lib_s, bare_s = statistics.median(lib), statistics.median(bare)
    sink.write("ratio", what="pretraining, batch 256, Adam 1e-3, data on the device", epochs=epochs, steps=steps,
               network=network(args.tiny), rows=n, library_s=round(lib_s, 4), bare_s=round(bare_s, 4),
               library_ms_per_step=round(1000 * lib_s / steps, 4), bare_ms_per_step=round(1000 * bare_s / steps, 4),
               ratio=round(bare_s / lib_s, 4), samples={"library": lib, "bare": bare})


def section_accel(args, sink, device, budget, X):
    """ms per step of pretraining under each setting, and of IDEC fine-tuning."""
    import torch

    epochs = 1 if args.tiny else 2
    steps = epochs * -(-len(X) // 256)
    variants = [("all off", {"tf32": "off", "adam": "single", "autocast": "off", "capture": "off"}),
                ("auto", {}),
                ("tf32", {"tf32": "on", "adam": "single", "autocast": "off", "capture": "off"}),
                ("adam foreach", {"tf32": "off", "adam": "foreach", "autocast": "off", "capture": "off"}),
                ("adam fused", {"tf32": "off", "adam": "fused", "autocast": "off", "capture": "off"}),
                ("bf16 autocast", {"autocast": "bf16"}),
                ("compile", {"capture": "compile"}),
                ("cudagraphs", {"capture": "cudagraphs"}),
                ("all on", {"tf32": "on", "adam": "fused", "autocast": "bf16", "capture": "cudagraphs"})]
    for name, settings in variants:
        # a variant is three epochs (seconds on a GPU); compiling the step takes up to a minute
        if budget.left() < (60 if settings.get("capture") == "compile" else 15):
            sink.write("accel", variant=name, skipped="budget")
            continue
        try:
            library_pretrain(X, device, args.tiny, 1, **settings)  # warm-up (compilation included)
            seconds = library_pretrain(X, device, args.tiny, epochs, **settings)
            sink.write("accel", variant=name, settings=settings, phase="pretrain", steps=steps,
                       ms_per_step=round(1000 * seconds / steps, 4))
        except Exception as exc:  # a setting that fails on this device is a finding, not the end
            sink.write("accel", variant=name, settings=settings, error=f"{type(exc).__name__}: {exc}"[:500])
    if device.type == "cuda" and budget.left() > 20:
        try:
            bare_pretrain(X, device, args.tiny, 1, graph=True)
            seconds = bare_pretrain(X, device, args.tiny, epochs, graph=True)
            sink.write("accel", variant="bare loop, whole step in one CUDA graph", phase="pretrain", steps=steps,
                       ms_per_step=round(1000 * seconds / steps, 4))
        except Exception as exc:
            sink.write("accel", variant="bare whole-step CUDA graph", error=f"{type(exc).__name__}: {exc}"[:500])
    # IDEC's fine-tuning steps (target updates included), auto settings against all off.
    from deepclust.models import DeepClusterer

    params = {**paper_params("idec", args.tiny), "pretrain_epochs": 1, "maxiter": 280 if not args.tiny else 30,
              "tol": 0.0, "kmeans_n_init": 1}
    for name, settings in (("all off", {"tf32": "off", "adam": "single", "autocast": "off", "capture": "off"}),
                           ("auto", {})):
        if budget.left() < 30:
            break
        from deepclust.models.training import accel

        with accel.override(**settings):
            timer = PhaseTimer()
            DeepClusterer("idec", 10, random_state=0, device=str(device), **params).fit(X, callbacks=[timer])
        sink.write("accel", variant=name, settings=settings, phase="idec fit, 1 pretraining epoch",
                   phases_s=timer.seconds(), finetune_ms_per_step=round(1000 * timer.seconds().get("finetune", 0)
                                                                        / params["maxiter"], 4))
    del torch


class PhaseTimer:
    """A library callback that times each phase (to the host clock: the loop syncs per epoch)."""

    def __new__(cls):
        from deepclust.models import Callback

        class _Timer(Callback):
            def __init__(self):
                self.marks = []

            def on_phase_begin(self, phase, epochs):
                self.marks.append((phase, time.perf_counter()))

            def seconds(self):
                ends = [t for _, t in self.marks[1:]] + [time.perf_counter()]
                return {p: round(end - t, 3) for (p, t), end in zip(self.marks, ends)}

        return _Timer()


def _embedding_model(X, device, args):
    from deepclust.models import DeepClusterer

    params = {**paper_params("idec", args.tiny), "pretrain_epochs": 2 if args.tiny else 10, "maxiter": 1,
              "kmeans_n_init": 1, "pretrain_optimizer": "adam", "pretrain_lr": 1e-3}
    return DeepClusterer("idec", 10, random_state=0, device=str(device), **params).fit(X)


def section_kmeans(args, sink, device, budget, X, y, state):
    import torch
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    from deepclust.models.training.kmeans import torch_kmeans

    est = _embedding_model(X, device, args)
    state["model"] = est
    z = est.transform(X)
    n_init = 5 if args.tiny else 20
    start = time.perf_counter()
    km = KMeans(10, n_init=n_init, random_state=0).fit(z)
    sk_s = time.perf_counter() - start
    zt = torch.as_tensor(z, device=device)
    torch_kmeans(zt, 10, n_init=2, seed=0, max_iter=5)  # warm-up
    sync(device)
    start = time.perf_counter()
    _, labels, inertia = torch_kmeans(zt, 10, n_init=n_init, seed=0)
    sync(device)
    th_s = time.perf_counter() - start
    row = {"rows": len(z), "dim": z.shape[1], "k": 10, "n_init": n_init,
           "sklearn_s": round(sk_s, 4), "torch_s": round(th_s, 4), "speedup": round(sk_s / th_s, 3),
           "sklearn_inertia": float(km.inertia_), "torch_inertia": inertia,
           "inertia_rel_diff": round(inertia / km.inertia_ - 1, 6)}
    if y is not None:
        row["nmi"] = {"sklearn": round(normalized_mutual_info_score(y, km.labels_), 4),
                      "torch": round(normalized_mutual_info_score(y, labels), 4)}
    sink.write("kmeans", what="embedding of an autoencoder pretrained briefly here", **row)


def section_predict(args, sink, device, budget, X, state):
    est = state.get("model") or _embedding_model(X, device, args)
    est.predict(X)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        est.predict(X)
        times.append(time.perf_counter() - start)
    one = X[:1]
    for _ in range(20):
        est.predict(one)
    lat = []
    for _ in range(200):
        start = time.perf_counter()
        est.predict(one)
        lat.append(time.perf_counter() - start)
    lat.sort()
    sink.write("predict", rows=len(X), rows_per_s=round(len(X) / statistics.median(times)),
               seconds=round(statistics.median(times), 4), one_row_latency_ms={
                   "p50": round(1000 * lat[len(lat) // 2], 4), "p90": round(1000 * lat[int(len(lat) * 0.9)], 4),
                   "min": round(1000 * lat[0], 4)})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def section_service(args, sink, device, budget, X, y, name):
    """A full IDEC job through `deepclust serve` (SQLite, local runner), upload to labels."""
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="deepclust-gpu-"))
    np.save(tmp / "x.npy", X)
    files = {"file": ("x.npy", (tmp / "x.npy").read_bytes())}
    if y is not None:
        np.save(tmp / "y.npy", y)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCLUST_") or k in (
        "DEEPCLUST_TF32", "DEEPCLUST_ADAM", "DEEPCLUST_AUTOCAST", "DEEPCLUST_CAPTURE")}
    env.update({"DEEPCLUST_DATA_DIR": str(tmp / "data"), "DEEPCLUST_DEVICE": str(device),
                "DEEPCLUST_MAX_JOB_MEMORY_BYTES": str(64 << 30)})
    port = _free_port()
    log = open(tmp / "serve.log", "wb")
    server = subprocess.Popen([*DEEPCLUST, "serve", "--port", str(port), "--log-level", "warning"], env=env, cwd=tmp,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    params = paper_params("idec", args.tiny)
    flat = {k: v for k, v in params.items() if not k.startswith("pretrain_")}
    pretrain = {k[len("pretrain_"):]: v for k, v in params.items() if k.startswith("pretrain_")}
    row = {"dataset": name, "rows": len(X), "params": params, "serve_log": str(tmp / "serve.log")}
    job_id = None
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        start = time.perf_counter()
        while True:
            if server.poll() is not None or budget.left() < 5:
                raise RuntimeError(f"deepclust serve did not start; see {tmp / 'serve.log'}")
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        row["serve_start_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        upload = {"file": files["file"]}
        if y is not None:
            upload["labels"] = ("y.npy", (tmp / "y.npy").read_bytes())
        r = client.post("/v1/datasets", files=upload)
        r.raise_for_status()
        dataset = r.json()["id"]
        row["upload_s"] = round(time.perf_counter() - start, 2)
        limit = max(1, int(budget.left() - 15))
        start = time.perf_counter()
        r = client.post("/v1/jobs", json={"dataset_id": dataset, "method": "idec", "n_clusters": 10, "seed": 0,
                                          "params": flat, "pretrain": pretrain, "max_runtime_s": limit})
        r.raise_for_status()
        job_id = r.json()["id"]
        phases, last, status = {}, None, None
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            now = time.perf_counter() - start
            status = job["status"]
            if status == "running" and "queued_to_running" not in phases:
                phases["queued_to_running"] = round(now, 2)
            if job.get("phase") and job["phase"] != last:
                phases[f"{job['phase']}_start"] = round(now, 2)
                last = job["phase"]
            if status in ("succeeded", "failed", "cancelled"):
                break
            if budget.left() < 8:
                client.post(f"/v1/jobs/{job_id}/cancel")
                row["cut"] = True
                row["progress_at_cut"] = job.get("progress")
                time.sleep(2)
                status = client.get(f"/v1/jobs/{job_id}").json()["status"]
                break
            time.sleep(0.25)
        row.update(status=status, job_s=round(time.perf_counter() - start, 2), phase_marks_s=phases)
        order = [k[:-len("_start")] for k in phases if k.endswith("_start")]
        ends = [phases[f"{p}_start"] for p in order[1:]] + [row["job_s"]]
        row["phases_s"] = {p: round(end - phases[f"{p}_start"], 2) for p, end in zip(order, ends)}
        if status == "succeeded":
            start = time.perf_counter()
            labels = client.get(f"/v1/jobs/{job_id}/labels", params={"format": "npy"})
            labels.raise_for_status()
            row["labels_s"] = round(time.perf_counter() - start, 3)
            metrics = client.get(f"/v1/jobs/{job_id}/metrics").json()
            row["external"] = metrics.get("external")
        else:
            row["error"] = client.get(f"/v1/jobs/{job_id}").json().get("error")
        logs = client.get(f"/v1/jobs/{job_id}/logs")
        if logs.status_code == 200:
            text = logs.text
            row["log_device_line"] = next((ln for ln in text.splitlines() if "device " in ln and "torch " in ln), None)
            (Path(sink.path).parent / "service-job.log").write_text(text)
        client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sink.write("service", job_id=job_id, **row)
    return row


def section_seeds(args, sink, device, budget, X, y):
    from sklearn.metrics import normalized_mutual_info_score

    from deepclust.models import DeepClusterer
    from deepclust.models.metrics import cluster_accuracy

    for seed in (1, 2):
        for method in ("dec", "idec"):
            # a run needs about as long as the service job took; start one only with room for it
            need = args.seed_run_s
            if budget.left() < need:
                sink.write("seeds", method=method, seed=seed, skipped=f"budget: {budget.left():.0f} s left, "
                                                                      f"a run needs about {need:.0f} s")
                continue
            start = time.perf_counter()
            est = DeepClusterer(method, 10, random_state=seed, device=str(device),
                                **paper_params(method, args.tiny)).fit(X)
            row = {"method": method, "seed": seed, "seconds": round(time.perf_counter() - start, 2)}
            if y is not None:
                row.update(acc=round(float(cluster_accuracy(y, est.labels_)), 4),
                           nmi=round(float(normalized_mutual_info_score(y, est.labels_)), 4))
            sink.write("seeds", **row)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget-s", type=float, default=480.0, help="stop starting work past this many seconds")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "results" / "gpu"))
    ap.add_argument("--tiny", action="store_true", help="dry run: digits, small networks, few epochs")
    add_data_dir_argument(ap)
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--seed-run-s", type=float, default=None,
                    help="seconds one DEC/IDEC seed run needs (default: the service job's time, else 150)")
    args = ap.parse_args(argv)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown sections {unknown}; use {SECTIONS}")

    import torch

    budget = Budget(args.budget_s)
    sink = Sink(args.out, budget)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sink.write("env", error=f"--device {args.device} but torch {torch.__version__} sees no GPU")
        return 1
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    X, y, name = load_data(args)
    sink.write("start", dataset=name, rows=len(X), sections=wanted, budget_s=args.budget_s, out=str(args.out),
               argv=sys.argv[1:])
    state: dict = {}
    failures = 0
    for section in wanted:
        if budget.left() < 5:
            sink.write(section, skipped="budget")
            continue
        start = time.perf_counter()
        try:
            if section == "env":
                section_env(args, sink, device, budget)
            elif section == "ratio":
                section_ratio(args, sink, device, budget, X)
            elif section == "accel":
                section_accel(args, sink, device, budget, X)
            elif section == "kmeans":
                section_kmeans(args, sink, device, budget, X, y, state)
            elif section == "predict":
                section_predict(args, sink, device, budget, X, state)
            elif section == "service":
                row = section_service(args, sink, device, budget, X, y, name)
                if args.seed_run_s is None and row.get("status") == "succeeded":
                    args.seed_run_s = max(10.0 if args.tiny else 60.0, row["job_s"])
            elif section == "seeds":
                if args.seed_run_s is None:
                    args.seed_run_s = 10.0 if args.tiny else 150.0
                section_seeds(args, sink, device, budget, X, y)
        except Exception as exc:
            failures += 1
            sink.write(section, error=f"{type(exc).__name__}: {exc}"[:1000],
                       traceback=traceback.format_exc()[-3000:])
        sink.write("timing", of=section, seconds=round(time.perf_counter() - start, 2))
    sink.write("done", seconds=round(budget.elapsed(), 2), failures=failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
