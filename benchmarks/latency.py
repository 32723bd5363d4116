"""Predict latency on an idle server, each figure beside its floor from the same run.

    python benchmarks/latency.py                  # 20 s per target, one client at a time
    python benchmarks/latency.py --seconds 5

Starts `deepclust serve` (loopback, the embedded default) on a fresh data dir, trains a
default-architecture DEC model on 2,000 MNIST rows (784-500-500-2000-10: the model's size is what
predict pays for), then, one request at a time over a keep-alive connection:

- HTTP predict of 1 row (JSON), of 1,000 rows (JSON), of 1,000 rows sent and answered as `.npy`;
- the floors, in this process on the same model: ``est.predict`` of 1 and 1,000 rows, and a bare
  ``torch`` forward of 1 row (encoder + soft assignment, no validation).

Prints one JSON line per target, then a Markdown table with the ratio to its floor.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("loadbench", ROOT / "load.py")
loadbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loadbench)


def multipart_npy(path: str, port: int, X: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, X)
    boundary = "deepclustbench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.npy\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/x-npy\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def timed(fn, seconds: float) -> dict:
    """p50/p99 of back-to-back calls for ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        fn()
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    lat = np.asarray(times) * 1000
    return {"requests": len(lat), "p50_ms": round(float(np.percentile(lat, 50)), 3),
            "p99_ms": round(float(np.percentile(lat, 99)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="per target")
    parser.add_argument("--only", default="", help="run only the HTTP targets whose name contains this (e.g. .npy)")
    loadbench.add_data_dir_argument(parser)  # benchmarks/benchdata.py, as load.py takes it
    args = parser.parse_args()

    import httpx
    import torch

    from deepclust.models import DeepClusterer

    X = loadbench.load_npz("mnist", args.data_dir)["x"][:2000].reshape(2000, -1).astype(np.float32)
    tmp = Path(tempfile.mkdtemp(prefix="deepclust-latency-"))
    port = loadbench.free_port()
    env = loadbench.env_for(data_dir=tmp / "data")
    server = loadbench.start([str(loadbench.BIN / "deepclust"), "serve", "--port", str(port), "--log-level", "warning"],
                             env, tmp, tmp / "serve.log")
    rows = []
    try:
        loadbench.wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            _, model_id = loadbench.train_model(client, env, X)
        weights, manifest = loadbench.export_model(f"sqlite:///{tmp / 'data' / 'deepclust.db'}", model_id, tmp)
        est = DeepClusterer.from_bytes(weights.read_bytes(), json.loads(manifest.read_text()), device="cpu")
        torch.set_num_threads(torch.get_num_threads())

        path = f"/v1/models/{model_id}/predict"
        http = {
            "http predict, 1 row JSON": loadbench.raw_request(
                "POST", path, port, json.dumps({"instances": X[:1].tolist()}).encode()),
            "http predict, 1,000 rows JSON": loadbench.raw_request(
                "POST", path, port, json.dumps({"instances": X[:1000].tolist()}).encode()),
            "http predict, 1,000 rows .npy": multipart_npy(path, port, X[:1000]),
        }
        for name, raw in http.items():
            if args.only not in name:
                continue
            asyncio.run(loadbench.load(port, raw, 1, 1.0, 60))  # warm: model cache, connection
            r = asyncio.run(loadbench.load(port, raw, 1, args.seconds, 60))
            if r["errors"]:
                raise SystemExit(f"{name}: {r['statuses']}")
            rows.append({"target": name, "requests": r["requests"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]})
            print(json.dumps(rows[-1]), flush=True)

        network = est.model_.eval()
        one = torch.from_numpy(X[:1])

        def bare_forward():
            with torch.inference_mode():
                network.soft_assign(network.embed(one)).numpy()

        floors = {"est.predict, 1 row": lambda: est.predict(X[:1]),
                  "est.predict, 1,000 rows": lambda: est.predict(X[:1000]),
                  "bare forward, 1 row": bare_forward}
        for name, fn in floors.items():
            rows.append({"target": name, **timed(fn, args.seconds)})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        loadbench.stop(server)
        subprocess.run(["rm", "-rf", str(tmp)])

    by = {r["target"]: r for r in rows}
    floor_of = {"http predict, 1 row JSON": "est.predict, 1 row",
                "http predict, 1,000 rows JSON": "est.predict, 1,000 rows",
                "http predict, 1,000 rows .npy": "est.predict, 1,000 rows",
                "est.predict, 1 row": "bare forward, 1 row"}
    print("\n| what | p50 ms | p99 ms | floor | floor p50 ms | ratio (p50) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        floor = floor_of.get(r["target"])
        if floor:
            f = by[floor]
            print(f"| {r['target']} | {r['p50_ms']} | {r['p99_ms']} | {floor} | {f['p50_ms']} | "
                  f"{r['p50_ms'] / f['p50_ms']:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
