"""Ingestion speed and memory against the bare readers, each figure beside its floor from the same run.

    python benchmarks/ingest.py                 # MNIST as .npy (float32), .parquet and .csv
    python benchmarks/ingest.py --http          # also the whole upload through a running server

For each format, in a fresh process each (so one cannot leave memory to the next):
- deepclust: ``app.ingest.canonicalize`` on an uploaded (staged, page-cached) file, durable, as
  ``POST /v1/datasets`` runs it;
- floor: what a user would write with the bare reader: ``np.load`` + finite check + ``np.save``
  + fsync; ``pq.read_table`` + float32 + check + save; ``pandas.read_csv`` + float32 + check + save.
MB/s is the input file's size over the wall time; peak extra memory is the process's peak RSS
(VmHWM, reset just before) above its RSS before the work; "held" is what stays after it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))
from benchdata import add_data_dir_argument, load_npz  # noqa: E402


# -- inputs -------------------------------------------------------------------------------------

def make_inputs(workdir: Path, csv_rows: int, data_dir: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = load_npz("mnist", data_dir)["x"]
    x = x.reshape(len(x), -1)
    paths = {"npy": workdir / "mnist.npy", "parquet": workdir / "mnist.parquet",
             "parquet-plain": workdir / "mnist-plain.parquet", "csv": workdir / "mnist.csv"}
    x32 = x.astype(np.float32) / 255
    np.save(paths["npy"], x32)
    table = pa.table({f"p{i}": x32[:, i] for i in range(x32.shape[1])})
    pq.write_table(table, paths["parquet"])  # pyarrow's defaults (as pandas.to_parquet writes it)
    pq.write_table(table, paths["parquet-plain"], compression="none", use_dictionary=False)
    np.savetxt(paths["csv"], x[:csv_rows], fmt="%d", delimiter=",")
    return paths


def reader_format(name: str) -> str:
    return name.split("-")[0]


# -- one measurement, in a child process ----------------------------------------------------------

def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def _fsynced_save(path: Path, x: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, x)
        f.flush()
        os.fsync(f.fileno())


def floor(fmt: str, src: Path, out: Path) -> None:
    if fmt == "npy":
        x = np.load(src)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(src)
        x = np.column_stack([c.to_numpy() for c in table.columns]).astype(np.float32, copy=False)
        del table
    else:
        import pandas as pd

        x = pd.read_csv(src, header=None).to_numpy(np.float32)
    if not np.isfinite(x).all():
        raise ValueError("non-finite")
    _fsynced_save(out, x)


def deepclust(fmt: str, src: Path, out: Path) -> None:
    from deepclust.app.datasets.ingest.tabular import canonicalize

    workdir = out.parent

    from contextlib import contextmanager

    @contextmanager
    def staging(suffix=""):
        fd, name = tempfile.mkstemp(dir=workdir, suffix=suffix)
        os.close(fd)
        try:
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    canonicalize(src, fmt, out, staging=staging, max_expanded_bytes=1 << 40)


def child(which: str, fmt: str, src: str, out: str) -> None:
    import pandas  # noqa: F401  (imports count for neither side)
    import pyarrow.parquet  # noqa: F401

    import deepclust.app.datasets.ingest.tabular  # noqa: F401

    before = _rss_mib()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM: the peak from here on
    start = time.perf_counter()
    (floor if which == "floor" else deepclust)(fmt, Path(src), Path(out))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_extra_mib": _peak_mib() - before, "held_mib": _rss_mib() - before}))


def measure(which: str, name: str, src: Path, workdir: Path) -> dict:
    fmt = reader_format(name)
    staged = workdir / f"staged.{fmt}"  # a fresh upload: canonicalize may move it away
    with open(src, "rb") as f, open(staged, "wb") as out:  # written, not cloned: dirty and cached like an upload
        while chunk := f.read(1 << 20):
            out.write(chunk)
    out = workdir / "out.npy"
    result = subprocess.run([sys.executable, __file__, "--child", which, fmt, str(staged), str(out)],
                            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT.parent)})
    for path in (staged, out):
        path.unlink(missing_ok=True)
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["mb_per_s"] = src.stat().st_size / 1e6 / row["seconds"]
    return row


# -- through the HTTP API -------------------------------------------------------------------------

def http_upload_seconds(paths: dict[str, Path], workdir: Path, repeats: int) -> dict[str, float]:
    import httpx

    port = 8765
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent), "DEEPCLUST_DATA_DIR": str(workdir / "server"),
           "DEEPCLUST_AUTH": "disabled", "DEEPCLUST_REAPER_INTERVAL_SECONDS": "0"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "deepclust.app.main:create_app", "--factory", "--port", str(port),
                               "--log-level", "warning"], env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            best = {}
            for fmt, path in paths.items():
                for _ in range(repeats):
                    with open(path, "rb") as f:
                        start = time.perf_counter()
                        r = client.post("/v1/datasets", files={"file": (path.name, f)})
                        seconds = time.perf_counter() - start
                    r.raise_for_status()
                    client.delete(f"/v1/datasets/{r.json()['id']}")
                    best[fmt] = min(best.get(fmt, float("inf")), seconds)
            return best
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs per side (alternating)")
    parser.add_argument("--csv-rows", type=int, default=20_000)
    parser.add_argument("--http", action="store_true", help="also time POST /v1/datasets against a uvicorn server")
    parser.add_argument("--formats", nargs="+", default=["npy", "parquet", "parquet-plain", "csv"])
    add_data_dir_argument(parser)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="deepclust-ingest-", dir=os.environ.get("TMPDIR", "/tmp")))
    try:
        paths = {k: v for k, v in make_inputs(workdir, args.csv_rows, args.data_dir).items() if k in args.formats}
        report = {}
        for fmt, path in paths.items():
            runs = {"deepclust": [], "floor": []}
            for _ in range(args.repeats):
                for which in runs:
                    runs[which].append(measure(which, fmt, path, workdir))
            best = {which: max(rows, key=lambda r: r["mb_per_s"]) for which, rows in runs.items()}
            peak = {which: max(r["peak_extra_mib"] for r in rows) for which, rows in runs.items()}
            report[fmt] = {"file_mb": round(path.stat().st_size / 1e6, 1),
                           **{f"{w}_mb_per_s": round(best[w]["mb_per_s"], 1) for w in runs},
                           "ratio": round(best["deepclust"]["mb_per_s"] / best["floor"]["mb_per_s"], 2),
                           **{f"{w}_peak_extra_mib": round(peak[w], 1) for w in runs},
                           **{f"{w}_held_mib": round(best[w]["held_mib"], 1) for w in runs}}
            print(json.dumps({fmt: report[fmt]}), flush=True)
        if args.http:
            for fmt, seconds in http_upload_seconds(paths, workdir, args.repeats).items():
                report[fmt]["http_upload_mb_per_s"] = round(paths[fmt].stat().st_size / 1e6 / seconds, 1)
                report[fmt]["http_ratio_to_floor"] = round(report[fmt]["http_upload_mb_per_s"]
                                                           / report[fmt]["floor_mb_per_s"], 2)
                print(json.dumps({fmt: {k: report[fmt][k] for k in ("http_upload_mb_per_s", "http_ratio_to_floor")}}),
                      flush=True)
        print(json.dumps({"load_average": os.getloadavg(), "cpus": os.cpu_count(), "results": report}, indent=1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
    else:
        main()
