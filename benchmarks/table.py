"""The reproduction table: many (method, dataset, seed) cells at the papers' settings, in a time budget.

    # on a GPU: every cell that fits in 540 s, several at once (a lent GPU runs it through
    # benchmarks/on_device.sh, after gpu.py, in the one call both issues' part 2 share)
    python benchmarks/table.py --device cuda --budget-s 540 --out benchmarks/results/table_gpu.jsonl
    # dry run on a CPU: a few hundred samples of each set (scikit-learn's digits without the
    # datasets folder) and each method's tiny_preset
    python benchmarks/table.py --device cpu --tiny --budget-s 240 --out /tmp/table_tiny.jsonl
    # the markdown table (mean ± std over seeds per method × dataset) from the JSON lines
    python benchmarks/table.py --summarize --out benchmarks/results/table_gpu.jsonl

Cells run in ``PLAN`` order (cheapest and most informative first; ``--cells`` picks others or a
subset, ``*`` a wildcard: ``--cells 'dec:mnist:*,kmeans:digits:0'``), each with the settings of
``presets/<method>.json`` for its dataset (``digits`` uses the ``usps`` preset), as
``reproduce.py`` runs them. A cell starts only when its estimated seconds fit what is left of
``--budget-s``: the estimate is ``GPU_SECONDS`` (or ``TINY_SECONDS``) times the ratio of measured
to estimated seconds over the cells finished so far. What cannot fit is recorded as skipped, with
why; a cell still running when the budget ends is stopped and recorded as cut.

Several cells run at once in a pool of worker processes (``spawn``; one device): on CUDA as many
as free memory (``torch.cuda.mem_get_info``) allows at ``GPU_MEMORY_GIB`` per cell, capped by the
CPU cores and ``--max-parallel``; on the CPU one, unless ``--parallel N``.

Each finished cell is appended to ``--out`` as one JSON line as soon as it ends (flushed and
fsynced), so a cut run keeps every finished cell; ``--resume`` skips the cells that already have
an ``"status": "ok"`` line (of the same mode, full or tiny). Labels only score the clustering.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import multiprocessing as mp
import os
import platform
import shlex
import signal
import sys
import time
import traceback
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(REPO))


def _source_tree_import() -> None:
    """``deepclust.models`` from this checkout when deepclust is not installed (a bare GPU
    machine with torch, scikit-learn and pydantic): setup.py maps ``models/`` to
    ``deepclust.models``, which a plain ``sys.path`` entry cannot do, so the repository root
    joins the ``deepclust`` package's search path."""
    try:
        import deepclust.models  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name not in ("deepclust.models", "deepclust"):
            raise
        import deepclust

        deepclust.__path__.append(str(REPO))


# torch and the library, imported by load_library() where cells run: --summarize, and a
# --resume with nothing left, stay light.
torch = DeepClusterer = get_method = tiny_preset = external_metrics = None
PhaseTimer = load_dataset = load_preset = torch_device = None
from benchdata import DatasetError, add_data_dir_argument, check  # noqa: E402


def load_library() -> None:
    global torch, DeepClusterer, get_method, tiny_preset, external_metrics
    global PhaseTimer, load_dataset, load_preset, torch_device
    if torch is not None:
        return
    _source_tree_import()
    import torch as _torch

    from deepclust.models import DeepClusterer as _est, get_method as _get, tiny_preset as _tiny
    from deepclust.models.metrics import external_metrics as _metrics
    from reproduce import PhaseTimer as _timer, load_dataset as _load, load_preset as _preset, torch_device as _dev

    torch, DeepClusterer, get_method, tiny_preset, external_metrics = _torch, _est, _get, _tiny, _metrics
    PhaseTimer, load_dataset, load_preset, torch_device = _timer, _load, _preset, _dev

DEFAULT_OUT = ROOT / "results" / "table.jsonl"

# The cells, in the order they start: MNIST DEC/IDEC seeds 1-2 (seed 0 ran on the CPU), CDC and
# DCCF on MNIST, DCEC on MNIST, DECS on USPS at the full 20,000 iterations, AE+DAC on MNIST and
# the CIFAR-10 test images; then further seeds, the GPU re-runs of the CPU's seeds 0, and the
# expensive DECS on MNIST last.
PLAN: list[tuple[str, str, int]] = [
    ("dec", "mnist", 1), ("dec", "mnist", 2), ("idec", "mnist", 1), ("idec", "mnist", 2),
    ("cdc", "mnist", 0), ("dccf", "mnist", 0),
    ("dcec", "mnist", 0),
    ("decs", "usps", 0),
    ("ae_dac", "mnist", 0), ("ae_dac", "cifar10_jpeg_test", 0),
    ("dccf", "mnist", 1), ("dccf", "mnist", 2), ("cdc", "mnist", 1), ("cdc", "mnist", 2),
    ("dec", "mnist", 0), ("idec", "mnist", 0), ("kmeans", "mnist", 0),
    ("ae_dac", "cifar10_jpeg_test", 1), ("ae_dac", "cifar10_jpeg_test", 2),
    ("dcec", "mnist", 1), ("dcec", "mnist", 2),
    ("decs", "usps", 1), ("decs", "usps", 2),
    ("ae_dac", "mnist", 1), ("ae_dac", "mnist", 2),
    ("dccf", "mnist", 3), ("dccf", "mnist", 4),
    ("decs", "mnist", 0), ("decs", "mnist", 1), ("decs", "mnist", 2),
]

# Expected seconds of one cell alone on one H200 at the preset's settings: a guess from the step
# counts (~1 ms per MLP step, ~1.5-3 ms per conv/augmented step, launch-bound) and the CPU runs
# of README.md/PAPERS.md, not a measurement. Only the ratios between cells matter much: after
# the first cells end, every estimate is scaled by measured / estimated seconds so far.
GPU_SECONDS: dict[tuple[str, str], float] = {
    ("kmeans", "mnist"): 30, ("kmeans", "usps"): 5, ("kmeans", "digits"): 2,
    ("dec", "mnist"): 120,      # 300 epochs x 274 steps pretraining + <= 20k iterations
    ("idec", "mnist"): 130,
    ("dec", "usps"): 20, ("idec", "usps"): 20,
    ("cdc", "mnist"): 170,      # 100 epochs x 1,094 steps (batch 64) + 5,000 iterations
    ("cdc", "usps"): 30,
    ("dccf", "mnist"): 60,      # 100 epochs x 274 steps + ~7 epochs with the exact Jacobian
    ("dccf", "usps"): 15,
    ("dcec", "mnist"): 120,     # CAE 200 epochs x 274 steps + <= 20k iterations
    ("dcec", "usps"): 40,
    ("decs", "usps"): 150,      # 500 augmented epochs x 37 steps + 20,000 augmented iterations
    ("decs", "mnist"): 450,
    ("ae_dac", "mnist"): 180,   # 100 + 75 epochs x 547 steps
    ("ae_dac", "cifar10_jpeg_test"): 40,
}
DEFAULT_GPU_SECONDS = 120.0
CPU_FACTOR = 40.0    # full settings on a CPU: the CPU runs in README.md took ~30-50x these
TINY_SECONDS = 3.0   # a tiny cell (tiny_preset, a few hundred samples) on a CPU core
TINY_SAMPLES = 300
# Peak GPU memory of one cell, GiB (CUDA context ~0.5, the data on the device, activations),
# with room to spare: what decides how many cells share the GPU.
GPU_MEMORY_GIB: dict[str, float] = {"decs": 4.0, "ae_dac": 4.0, "dcec": 3.0}
DEFAULT_GPU_MEMORY_GIB = 2.5

Cell = tuple[str, str, int]


# -- data and settings ------------------------------------------------------------------------
def digits() -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1] (1,797 images)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64), (1, 8, 8)


def resolve_dataset(name: str, data_dir: Path, tiny: bool) -> str:
    """The dataset a cell runs on: in a tiny run, ``digits`` for a file the folder lacks."""
    if tiny and name != "digits" and not (data_dir / f"{name}.npz").is_file():
        return "digits"
    return name


def load_cell_data(method: str, dataset: str, data_dir: Path, tiny: bool) -> tuple[np.ndarray, np.ndarray]:
    images = "features" not in get_method(method).input_kinds
    if dataset == "digits":
        x, y, shape = digits()
        x = x.reshape(-1, *shape) if images else x
    else:
        x, y = load_dataset(dataset, data_dir, images=images)
    if tiny and len(x) > TINY_SAMPLES:  # a fixed seeded subset, the same for every cell
        idx = np.sort(np.random.default_rng(12345).choice(len(x), size=TINY_SAMPLES, replace=False))
        x, y = x[idx], y[idx]
    return x, y


def cell_settings(method: str, dataset: str, tiny: bool) -> dict:
    preset_name = "usps" if dataset == "digits" else dataset
    preset = load_preset(method, preset_name)
    params = dict(tiny_preset(method)) if tiny else dict(preset["params"])
    return {"preset": preset_name, "tiny": tiny, "n_clusters": preset["n_clusters"],
            "scaling": preset.get("scaling", "auto"), "params": params}


def base_estimate(cell: Cell, tiny: bool, device: str) -> float:
    if tiny:
        return TINY_SECONDS
    seconds = GPU_SECONDS.get(cell[:2], DEFAULT_GPU_SECONDS)
    return seconds if device.startswith("cuda") else seconds * CPU_FACTOR


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# -- the worker: one process of the pool runs cells one after another ---------------------------
def run_cell(spec: dict) -> dict:
    method, dataset, seed = spec["method"], spec["dataset"], spec["seed"]
    settings = cell_settings(method, dataset, spec["tiny"])
    x, y = load_cell_data(method, dataset, Path(spec["data_dir"]), spec["tiny"])
    est = DeepClusterer(method, settings["n_clusters"], random_state=seed, device=spec["device"],
                        scaling=settings["scaling"], **settings["params"])
    dev = torch_device(spec["device"])
    timer = PhaseTimer(dev)
    start = time.perf_counter()
    est.fit(x, callbacks=[timer])
    timer.close()
    seconds = time.perf_counter() - start
    return {"method": method, "dataset": dataset, "seed": seed, "status": "ok", "n": int(len(x)),
            "settings": settings, **{k: round(float(v), 4) for k, v in external_metrics(y, est.labels_).items()},
            "seconds": round(seconds, 1),
            "phase_seconds": {k: round(v, 1) for k, v in timer.seconds.items()},
            "finetune_epochs": sum(1 for h in getattr(est, "history_", []) if h.get("phase") == "finetune"),
            "device": device_name(dev), "torch": torch.__version__}


def worker_main(conn, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a worker stops
    load_library()
    torch.set_num_threads(threads)
    conn.send("ready")  # the imports are done: a cell's time starts when it is sent
    while True:
        try:
            spec = conn.recv()
        except EOFError:
            return
        if spec is None:
            return
        try:
            result = run_cell(spec)
        except Exception as exc:  # noqa: BLE001 - one failed cell must not end the table
            result = {"method": spec["method"], "dataset": spec["dataset"], "seed": spec["seed"],
                      "status": "failed", "why": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=8)}
        finally:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.empty_cache()
        conn.send(result)


class Worker:
    def __init__(self, ctx, threads: int):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, threads), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.cell: Cell | None = None
        self.started = 0.0
        self.estimate = 0.0

    def wait_ready(self, timeout: float) -> bool:
        if not self.ready and self.conn.poll(max(0.0, timeout)):
            self.ready = self.conn.recv() == "ready"
        return self.ready

    def stop(self, grace: float = 5.0) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(grace)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()


# -- the scheduler ----------------------------------------------------------------------------
def parse_cells(text: str | None, tiny: bool, data_dir: Path) -> list[Cell]:
    """``--cells``: comma-separated ``method:dataset:seed``; a part with ``*`` or ``?`` selects
    from PLAN, a plain one is run as given. Tiny runs without the data use ``digits``."""
    if not text:
        chosen = list(PLAN)
    else:
        chosen = []
        for entry in filter(None, (e.strip() for e in text.split(","))):
            parts = entry.split(":")
            if len(parts) != 3:
                raise SystemExit(f"--cells: {entry!r} is not method:dataset:seed")
            if any(c in entry for c in "*?["):
                chosen += [c for c in PLAN if all(fnmatch.fnmatchcase(str(v), p) for v, p in zip(c, parts))]
            else:
                chosen.append((parts[0], parts[1], int(parts[2])))
    out: list[Cell] = []
    for method, dataset, seed in chosen:
        cell = (method, resolve_dataset(dataset, data_dir, tiny), seed)
        preset_file = ROOT / "presets" / f"{method}.json"
        preset_name = "usps" if cell[1] == "digits" else cell[1]
        if not preset_file.is_file() or preset_name not in json.loads(preset_file.read_text()):
            raise SystemExit(f"--cells: no preset {preset_name!r} for method {method!r} in benchmarks/presets/")
        if cell not in out:
            out.append(cell)
    return out


def pool_size(args, cells: list[Cell]) -> tuple[int, str]:
    cores = os.cpu_count() or 1
    if args.parallel:
        return max(1, args.parallel), "--parallel"
    dev = torch_device(args.device)
    if dev.type != "cuda":
        return 1, "CPU default"
    free, total = torch.cuda.mem_get_info(dev)
    per_cell = max([GPU_MEMORY_GIB.get(m, DEFAULT_GPU_MEMORY_GIB) for m, _, _ in cells] or [DEFAULT_GPU_MEMORY_GIB])
    by_memory = int(0.8 * free / 2**30 // per_cell)
    n = max(1, min(by_memory, cores, args.max_parallel, len(cells)))
    return n, (f"{free / 2**30:.0f} of {total / 2**30:.0f} GiB free / {per_cell} GiB per cell -> {by_memory}; "
               f"{cores} cores; --max-parallel {args.max_parallel}")


def is_tiny(row: dict) -> bool:
    if "tiny" in row or "settings" in row:
        return bool(row.get("tiny", row.get("settings", {}).get("tiny")))
    return "--tiny" in shlex.split(row.get("command", ""))


def done_cells(out: Path, tiny: bool) -> set[Cell]:
    done = set()
    for row in read_rows(out):
        if row.get("status") == "ok" and is_tiny(row) == tiny:
            done.add((row["method"], row["dataset"], int(row["seed"])))
    return done


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line cut by a killed run
    return rows


def append_row(out: Path, row: dict) -> None:
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def log(msg: str) -> None:
    print(f"[table {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_table(args, argv: list[str]) -> None:
    t0 = time.monotonic()
    deadline = t0 + args.budget_s
    cells = parse_cells(args.cells, args.tiny, args.data_dir)
    try:  # every file the cells read, checked before the first cell starts
        for dataset in sorted({c[1] for c in cells} - {"digits"}):
            check(dataset, args.data_dir)
    except DatasetError as exc:
        sys.exit(f"table.py: {exc}")
    if args.resume:
        done = done_cells(args.out, args.tiny)
        if done & set(cells):
            log(f"--resume: {len(done & set(cells))} cells already in {args.out}")
        cells = [c for c in cells if c not in done]
    if not cells:
        log("nothing to run")
        return
    load_library()
    n_workers, why_n = pool_size(args, cells)
    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // n_workers)
    log(f"{len(cells)} cells, budget {args.budget_s:.0f} s, {n_workers} worker(s) x {threads} thread(s) "
        f"({why_n}), device {args.device}, out {args.out}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "benchmarks/table.py", *argv])
    common = {"tiny": args.tiny, "command": command, "date": time.strftime("%Y-%m-%d"), "workers": n_workers,
              "threads": threads}

    pending = list(cells)
    measured, estimated = 0.0, 0.0   # over finished cells: seconds taken / seconds estimated
    # Before any cell ends, guess that cells sharing one GPU slow each other by a quarter each.
    prior = 1.0 + 0.25 * (n_workers - 1) if args.device.startswith("cuda") else 1.0
    counts = {"ok": 0, "failed": 0, "skipped": 0}

    def ratio() -> float:
        return measured / estimated if estimated > 0 else prior

    def record(row: dict) -> None:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        append_row(args.out, {**row, **common})

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # k-means' threads too
        os.environ.setdefault(var, str(threads))  # read by the workers, which start after this
    ctx = mp.get_context("spawn")
    workers = [Worker(ctx, threads) for _ in range(n_workers)]
    try:
        for w in workers:  # the workers' imports count against the budget, not against a cell
            w.wait_ready(deadline - time.monotonic())
        log(f"{sum(w.ready for w in workers)} worker(s) ready after {time.monotonic() - t0:.0f} s")
        while pending or any(w.cell for w in workers):
            now = time.monotonic()
            left = deadline - now
            # Start the first pending cell that fits on each idle worker.
            for w in workers:
                if w.cell is not None or not pending:
                    continue
                for cell in pending:
                    est = base_estimate(cell, args.tiny, args.device) * ratio()
                    if est <= left:
                        pending.remove(cell)
                        spec = {"method": cell[0], "dataset": cell[1], "seed": cell[2], "tiny": args.tiny,
                                "device": args.device, "data_dir": str(args.data_dir)}
                        if not w.proc.is_alive():  # a worker that died (out of memory, say) is replaced
                            w.__init__(ctx, threads)
                            w.wait_ready(120)
                        w.conn.send(spec)
                        w.cell, w.started, w.estimate = cell, now, est
                        log(f"start {':'.join(map(str, cell))} (estimate {est:.0f} s, {left:.0f} s left)")
                        break
            busy = [w for w in workers if w.cell]
            if not busy:
                # Nothing runs and nothing pending fits: with nothing left to refine the
                # estimates, the rest cannot start.
                for cell in pending:
                    base = base_estimate(cell, args.tiny, args.device)
                    est = base * ratio()
                    record({"method": cell[0], "dataset": cell[1], "seed": cell[2], "status": "skipped",
                            "why": f"estimated {est:.0f} s > {max(left, 0):.0f} s left of the "
                                   f"{args.budget_s:.0f} s budget (table {base:.0f} s x ratio {ratio():.2f})",
                            "estimate_s": round(est, 1)})
                    log(f"skip {':'.join(map(str, cell))}: estimate {est:.0f} s > {max(left, 0):.0f} s left")
                pending.clear()
                break
            if left <= 0:
                for w in busy:
                    w.stop()
                    record({"method": w.cell[0], "dataset": w.cell[1], "seed": w.cell[2], "status": "skipped",
                            "why": f"cut: still running after {time.monotonic() - w.started:.0f} s when the "
                                   f"{args.budget_s:.0f} s budget ended (estimate {w.estimate:.0f} s)",
                            "estimate_s": round(w.estimate, 1)})
                    log(f"cut {':'.join(map(str, w.cell))} at the end of the budget")
                    w.cell = None
                continue  # the loop records what is still pending as skipped
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=min(left, 5.0))
            for w in busy:
                if w.conn not in ready and w.proc.sentinel not in ready:
                    continue
                took = time.monotonic() - w.started
                try:
                    row = w.conn.recv() if w.conn.poll() else None
                except (EOFError, OSError):
                    row = None
                if row == "ready":  # a worker that was slow to start
                    w.ready = True
                    continue
                if row is None:
                    if w.proc.is_alive():
                        continue
                    row = {"method": w.cell[0], "dataset": w.cell[1], "seed": w.cell[2], "status": "failed",
                           "why": f"worker process died (exit code {w.proc.exitcode})"}
                if row["status"] == "ok":
                    measured += took
                    estimated += base_estimate(w.cell, args.tiny, args.device)
                    log(f"done {':'.join(map(str, w.cell))}: acc {row['acc']:.4f} nmi {row['nmi']:.4f} "
                        f"in {took:.0f} s (estimate {w.estimate:.0f} s; ratio now {ratio():.2f})")
                else:
                    log(f"FAILED {':'.join(map(str, w.cell))}: {row['why']}")
                record({**row, "wall_s": round(took, 1), "estimate_s": round(w.estimate, 1)})
                w.cell = None
    finally:
        for w in workers:
            if w.cell is None and w.proc.is_alive():
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        for w in workers:
            w.proc.join(2.0)
            w.stop()
    log(f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped in "
        f"{time.monotonic() - t0:.0f} s -> {args.out}")


# -- the summary ------------------------------------------------------------------------------
NAMES = {"kmeans": "k-means", "dec": "DEC", "idec": "IDEC", "cdc": "CDC", "dccf": "DCCF", "dcec": "DCEC",
         "decs": "DECS", "ae_dac": "AE+DAC"}
DATA_NAMES = {"mnist": "MNIST", "usps": "USPS", "cifar10_jpeg_test": "CIFAR-10 test (JPEG)", "digits": "digits"}


def summarize(path: Path) -> str:
    rows = read_rows(path)
    latest: dict[tuple, dict] = {}   # a cell run twice counts once: its last ok line, else its last line
    for row in rows:
        key = (row.get("method"), row.get("dataset"), row.get("seed"), is_tiny(row))
        if row.get("status") == "ok" or latest.get(key, {}).get("status") != "ok":
            latest[key] = row
    ok = [r for r in latest.values() if r.get("status") == "ok"]
    order = {m: i for i, m in enumerate(dict.fromkeys(m for m, _, _ in PLAN))}
    groups: dict[tuple, list[dict]] = {}
    for r in ok:
        groups.setdefault((r["method"], r["dataset"], is_tiny(r)), []).append(r)
    lines = [f"From `{path}`: mean ± std (numpy's population std) over the seeds listed.", "",
             "| method | data | n | ACC (mean ± std) | NMI | ARI | seeds | fit s per seed | device | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def ms(vals):
        return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"

    def position(item):
        (method, dataset, tiny), _ = item
        return tiny, order.get(method, 99), dataset

    for (method, dataset, tiny), group in sorted(groups.items(), key=position):
        group.sort(key=lambda r: r["seed"])
        acc = [r["acc"] for r in group]
        note = []
        if tiny:
            note.append("tiny dry run (tiny_preset): not a result")
        if method == "dccf":
            best = max(group, key=lambda r: r["acc"])
            note.append(f"best of {len(group)} seeds, uses labels to pick: ACC {best['acc']:.3f} (seed {best['seed']})")
        devices = sorted({r.get("device", "?") for r in group})
        lines.append(f"| {NAMES.get(method, method)} | {DATA_NAMES.get(dataset, dataset)} | {group[0]['n']} | "
                     f"{ms(acc)} | "
                     f"{ms([r['nmi'] for r in group])} | {ms([r['ari'] for r in group])} | "
                     f"{len(group)} ({', '.join(str(r['seed']) for r in group)}) | "
                     f"{np.mean([r['seconds'] for r in group]):.0f} | {', '.join(devices)} | {'; '.join(note)} |")
    if not groups:
        lines.append("| (no finished cell) | | | | | | | | | |")
    commands = sorted({r.get("command", "?") for r in ok})
    if commands:
        lines += ["", "Command" + ("s" if len(commands) > 1 else "") + ": " + ", ".join(f"`{c}`" for c in commands)]
    other = sorted((r for r in latest.values() if r.get("status") != "ok"),
                   key=lambda r: (r.get("method", ""), r.get("dataset", ""), r.get("seed", 0)))
    if other:
        lines += ["", "Not in the table:", ""]
        lines += [f"- {r['method']}:{r['dataset']}:{r['seed']} {r['status']}: {r.get('why', '')}" for r in other]
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    ap.add_argument("--budget-s", type=float, default=780.0, help="wall seconds for the whole table (default 780)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"JSON lines (default {DEFAULT_OUT.relative_to(REPO)})")
    add_data_dir_argument(ap)
    ap.add_argument("--cells", help="comma-separated method:dataset:seed, '*' wildcards select from the plan")
    ap.add_argument("--tiny", action="store_true", help="dry run: a few hundred samples, tiny_preset(method)")
    ap.add_argument("--resume", action="store_true", help="skip cells with an ok line in --out")
    ap.add_argument("--parallel", type=int, help="cells at once (default: from free GPU memory; 1 on a CPU)")
    ap.add_argument("--max-parallel", type=int, default=8, help="cap on the GPU default (default 8)")
    ap.add_argument("--threads", type=int, help="torch threads per worker (default: cores / workers)")
    ap.add_argument("--summarize", action="store_true", help="print the markdown table of --out and exit")
    ap.add_argument("--list", action="store_true", help="print the cells and their estimates and exit")
    args = ap.parse_args(argv)
    args.data_dir = args.data_dir.resolve()
    if args.summarize:
        print(summarize(args.out))
        return
    if args.device == "auto":  # the estimates and the pool differ for CUDA and CPU
        load_library()
        args.device = torch_device("auto").type
    if args.list:
        for cell in parse_cells(args.cells, args.tiny, args.data_dir):
            print(f"{':'.join(map(str, cell))}\t{base_estimate(cell, args.tiny, args.device):.0f} s")
        return
    # A SIGTERM (a timeout) ends the run through the finally blocks: workers stopped, lines kept.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_table(args, argv)


if __name__ == "__main__":
    main()
