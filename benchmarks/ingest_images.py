"""Image-archive ingestion: the service's upload against a plain Pillow loop over the same archive.

    python benchmarks/ingest_images.py                     # the 1k MNIST PNG zip and a generated 60k one
    python benchmarks/ingest_images.py --generated 2000    # a smaller generated archive

For each archive, side by side in one run:

- **upload**: ``POST /v1/datasets`` to a real ``deepclust serve`` (a child process, SQLite, its own
  data dir), the file streamed by httpx; wall time from the first byte sent to the 201, and the
  server's peak resident memory during the request (``VmHWM`` of the server process, reset just
  before the upload through ``/proc/<pid>/clear_refs``) next to its idle ``VmRSS``;
- **plain loop**: a fresh Python process that reads every image member with ``zipfile``, decodes
  it with Pillow (``convert("L")``), keeps the arrays in a list and stacks them at the end, the
  way a short script would; its wall time and peak memory above its own idle RSS.

MB/s is the archive's size on disk over the wall time. The generated archive holds the first N
MNIST training digits (``mnist.npz`` in ``--data-dir``) as 28×28 PNGs in one folder per class,
zipped with deflate like ``zip -r`` does.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # benchdata, imported where needed: the --plain child imports only what it measures
MB = 1 << 20


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


# -- inputs -----------------------------------------------------------------------------------

def generated_archive(n: int, path: Path, data_dir: Path) -> Path:
    from benchdata import load_npz
    from PIL import Image

    data = load_npz("mnist", data_dir)
    x, y = data["x"][:n].reshape(-1, 28, 28), data["y"][:n]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (image, label) in enumerate(zip(x, y)):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, "PNG")
            zf.writestr(f"{label}/{i:05d}.png", buffer.getvalue())
    return path


# -- the plain loop (run in its own process: python ingest_images.py --plain ARCHIVE) --------------

def plain_loop(archive: Path) -> dict:
    import numpy as np
    from PIL import Image

    idle = proc_memory(os.getpid())["VmRSS"]
    reset_peak(os.getpid())
    start = time.perf_counter()
    images = []
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if name.lower().endswith(".png"):
                images.append(np.asarray(Image.open(io.BytesIO(zf.read(name))).convert("L")))
    x = np.stack(images)
    seconds = time.perf_counter() - start
    peak = proc_memory(os.getpid())["VmHWM"]
    return {"seconds": seconds, "n_images": len(x), "shape": list(x.shape), "idle_rss": idle, "peak_rss": peak}


def run_plain(archive: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--plain", str(archive)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


# -- the service ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path):
        self.port = free_port()
        env = {**os.environ, "DEEPCLUST_DATA_DIR": str(data_dir), "DEEPCLUST_AUTH": "disabled",
               "DEEPCLUST_PORT": str(self.port), "PYTHONPATH": str(ROOT.parent)}
        self.log = data_dir / "serve.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "serve",
                                             "--log-level", "warning"], env=env, cwd=data_dir,
                                            stdout=log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait(self, httpx) -> None:
        for _ in range(600):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start: " + self.log.read_text())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def upload(server: Server, archive: Path) -> dict:
    import httpx

    idle = proc_memory(server.process.pid)["VmRSS"]
    reset_peak(server.process.pid)
    start = time.perf_counter()
    with open(archive, "rb") as f:
        r = httpx.post(f"{server.url}/v1/datasets", files={"file": (archive.name, f)}, timeout=3600)
    seconds = time.perf_counter() - start
    peak = proc_memory(server.process.pid)["VmHWM"]
    if r.status_code != 201:
        raise RuntimeError(f"upload of {archive} answered {r.status_code}: {r.text}")
    body = r.json()
    return {"seconds": seconds, "n_images": body["n_samples"], "shape": [body["n_samples"], *body["sample_shape"]],
            "idle_rss": idle, "peak_rss": peak}


def summary(name: str, archive: Path, side: str, m: dict) -> dict:
    size = archive.stat().st_size
    return {"archive": name, "archive_mb": round(size / MB, 2), "side": side, "n_images": m["n_images"],
            "seconds": round(m["seconds"], 2), "mb_per_s": round(size / MB / m["seconds"], 2),
            "images_per_s": round(m["n_images"] / m["seconds"]),
            "peak_rss_mb": round(m["peak_rss"] / MB), "peak_above_idle_mb": round((m["peak_rss"] - m["idle_rss"]) / MB)}


def main() -> None:
    from benchdata import add_data_dir_argument, dataset_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generated", type=int, default=60_000, help="images in the generated archive")
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)
    add_data_dir_argument(parser)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain_loop(args.plain)))
        return

    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        generated = generated_archive(args.generated, tmp / f"mnist_png_{args.generated // 1000}k.zip", args.data_dir)
        print(f"# generated {generated.name} ({generated.stat().st_size / MB:.1f} MB) in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        archives = {"mnist_test_png_1k.zip": dataset_path("mnist_test_png_1k.zip", args.data_dir), generated.name: generated}
        (tmp / "data").mkdir()
        server = Server(tmp / "data")
        try:
            server.wait(httpx)
            rows = []
            for name, path in archives.items():
                rows.append(summary(name, path, "upload (service)", upload(server, path)))
                rows.append(summary(name, path, "plain Pillow loop", run_plain(path)))
        finally:
            server.stop()
    for row in rows:
        print(json.dumps(row))
    print("\n| archive | MB | images | side | seconds | MB/s | images/s | peak RSS (MB) | peak above idle (MB) |",
          file=sys.stderr)
    print("|---|---|---|---|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        print(f"| {r['archive']} | {r['archive_mb']} | {r['n_images']} | {r['side']} | {r['seconds']} | "
              f"{r['mb_per_s']} | {r['images_per_s']} | {r['peak_rss_mb']} | {r['peak_above_idle_mb']} |",
              file=sys.stderr)


if __name__ == "__main__":
    main()
