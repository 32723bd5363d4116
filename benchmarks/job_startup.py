"""A job's fixed start-up cost through `deepclust serve`, beside the same fit in a fresh `python -c`.

    python benchmarks/job_startup.py --jobs 5

Starts `deepclust serve` (loopback, a fresh data dir, SQLite; progress written at every epoch so
the throttle does not hide the start) and uploads synthetic blobs (2,000 × 32 float32, 10
clusters; no dataset files needed). After ``--settle`` seconds, so the runner's process for the
next job has imported torch (the steady state between jobs), it sends ``--jobs`` tiny DEC jobs one
after another (``--gap`` seconds apart) and times each from POST /v1/jobs to: the job showing
`running`, its first phase (the job's process has adopted it and trains), its first history row
(an epoch done), `succeeded`.
Then it runs the same fit (same data, params, seed and device) ``--jobs`` times, each in a fresh
`python -c` process, timed from launch to exit, imports included: what the job costs without the
service. Prints one JSON object: every sample and the medians.
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
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEEPCLUST = str(Path(sys.executable).parent / "deepclust")
K = 10
PARAMS = {"hidden_dims": [32, 32], "embedding_dim": 5, "maxiter": 60, "update_interval": 20, "batch_size": 64,
          "kmeans_n_init": 3}
PRETRAIN = {"epochs": 2, "batch_size": 64}

FIT = """
import json, sys, time
start = time.perf_counter()
import numpy as np
from deepclust.models import DeepClusterer
imported = time.perf_counter()
X = np.load(sys.argv[1])
DeepClusterer("dec", {k}, random_state=0, device="auto", scaling="auto", **json.loads(sys.argv[2])).fit(X)
print(json.dumps({{"imports_s": imported - start, "fit_s": time.perf_counter() - imported}}))
"""


def blobs(n: int = 2000, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 6, size=(K, d))
    return (centers[np.arange(n) % K] + rng.normal(0, 1, size=(n, d))).astype(np.float32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def through_serve(client, dataset: str) -> dict:
    """One job, polled every 10 ms: seconds from POST to running, first phase, first history row, succeeded."""
    start = time.perf_counter()
    r = client.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": K, "seed": 0,
                                      "params": PARAMS, "pretrain": PRETRAIN})
    r.raise_for_status()
    job_id, seen = r.json()["id"], {}
    while "succeeded" not in seen:
        job = client.get(f"/v1/jobs/{job_id}").json()
        now = time.perf_counter() - start
        if job["status"] in ("failed", "cancelled"):
            raise SystemExit(f"job {job_id} {job['status']}: {job.get('error')}")
        if job["status"] in ("running", "succeeded"):
            seen.setdefault("running", now)
        if job["phase"]:
            seen.setdefault("first_phase", now)
        if "first_history_row" not in seen and client.get(f"/v1/jobs/{job_id}/history").json():
            seen["first_history_row"] = now
        if job["status"] == "succeeded":
            seen["succeeded"] = now
        time.sleep(0.01)
    return {f"{k}_s": round(v, 3) for k, v in seen.items()}


def fresh_process(data: Path) -> dict:
    start = time.perf_counter()
    params = {**PARAMS, **{f"pretrain_{k}": v for k, v in PRETRAIN.items()}}
    done = subprocess.run([sys.executable, "-c", FIT.format(k=K), str(data), json.dumps(params)], cwd=REPO,
                          capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    inside = json.loads(done.stdout.strip().splitlines()[-1])
    return {"total_s": round(time.perf_counter() - start, 3), **{k: round(v, 3) for k, v in inside.items()}}


def medians(samples: list[dict]) -> dict:
    return {k: round(statistics.median(s[k] for s in samples), 3) for k in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5, help="jobs through serve, and fresh-process fits")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds between serve's start and the first job")
    parser.add_argument("--gap", type=float, default=0.0,
                        help="seconds between one job's end and the next POST (0: back to back; a few seconds: each "
                             "job finds an idle worker whose next process has imported torch)")
    args = parser.parse_args()

    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="deepclust-startup-"))
    data = tmp / "blobs.npy"
    np.save(data, blobs())
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCLUST_")}
    env.update({"DEEPCLUST_DATA_DIR": str(tmp / "data"), "DEEPCLUST_PROGRESS_INTERVAL_SECONDS": "0",
                "PYTHONPATH": str(REPO)})
    port = free_port()
    server = subprocess.Popen([DEEPCLUST, "serve", "--port", str(port), "--log-level", "warning"], env=env, cwd=tmp,
                              stdout=open(tmp / "serve.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"deepclust serve did not start; see {tmp / 'serve.log'}")
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        dataset = client.post("/v1/datasets", files={"file": ("blobs.npy", data.read_bytes())}).json()["id"]
        time.sleep(args.settle)
        served = []
        for i in range(args.jobs):
            if i and args.gap:
                time.sleep(args.gap)
            served.append(through_serve(client, dataset))
        client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        finally:
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    fresh = [fresh_process(data) for _ in range(args.jobs)]
    print(json.dumps({"data": {"n": 2000, "d": 32, "k": K}, "gap_s": args.gap,
                      "job": {"method": "dec", "params": PARAMS, "pretrain": PRETRAIN},
                      "serve": {"median": medians(served), "samples": served},
                      "fresh_process": {"median": medians(fresh), "samples": fresh}}, indent=2))


if __name__ == "__main__":
    main()
