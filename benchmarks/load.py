"""The service under N concurrent clients, beside a bare FastAPI route running the same model.

    python benchmarks/load.py --db sqlite                    # the embedded default: deepclust serve
    python benchmarks/load.py --db postgresql --workers 2    # uvicorn --workers, as the compose stack runs it

Starts the server (loopback only) on a fresh data dir (and a fresh PostgreSQL schema), uploads
2,000 MNIST rows, trains a default-architecture DEC model on them briefly (784-500-500-2000-10: the
model's size is what predict pays for, not its accuracy), then for each target keeps ``--clients``
connections busy for ``--duration`` seconds, each sending its next request as soon as the last
answered. Every answer that is not a 2xx, and every timeout or broken connection, is an error.
Targets: predict of 1 and of 1,000 rows (JSON), job status, dataset list; and the same two
predicts against a bare FastAPI app (same uvicorn, same worker count, same cached model, no
database) started beside it. Prints one JSON line per target and a Markdown table.

The load generator is a small keep-alive HTTP/1.1 client on asyncio (one connection per client);
it shares the machine's cores with the server, as any loopback benchmark does, and equally so
for both servers compared.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(ROOT))
from benchdata import add_data_dir_argument, load_npz  # noqa: E402
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("DEEPCLUST_BENCH_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")

BARE_APP = '''
import os
import numpy as np
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from deepclust.models import DeepClusterer

weights = open(os.environ["BARE_WEIGHTS"], "rb").read()
import json
manifest = json.load(open(os.environ["BARE_MANIFEST"]))
model = DeepClusterer.from_bytes(weights, manifest, device="cpu")
app = FastAPI()


@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    X = np.asarray(body["instances"], dtype=np.float32)
    proba = await run_in_threadpool(model.predict_proba, X)
    return {"labels": proba.argmax(1).tolist(), "probabilities": proba.tolist()}
'''


# -- a lean HTTP/1.1 keep-alive client ------------------------------------------------------------

class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            await self.open()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status


def raw_request(method: str, path: str, port: int, body: bytes = b"", headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def load(port: int, raw: bytes, clients: int, duration: float, timeout: float) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.perf_counter() + duration

    async def client() -> None:
        conn = Connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                status = await asyncio.wait_for(conn.request(raw), timeout)
                key = str(status)
            except asyncio.TimeoutError:
                key = "timeout"
                conn.close()
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                key = type(exc).__name__
                conn.close()
            latencies.append(time.perf_counter() - start)
            statuses[key] = statuses.get(key, 0) + 1
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    lat = np.sort(np.asarray(latencies)) * 1000
    ok = sum(n for s, n in statuses.items() if s.isdigit() and 200 <= int(s) < 300)
    return {"requests": len(lat), "ok": ok, "errors": len(lat) - ok, "statuses": statuses,
            "throughput_rps": round(ok / elapsed, 1), "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1), "max_ms": round(float(lat[-1]), 1),
            "seconds": round(elapsed, 1)}


# -- the servers ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout} s")


def start(args: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> float:
    """SIGTERM, then wait; returns how long the server took to stop."""
    start_at = time.perf_counter()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    took = time.perf_counter() - start_at
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return took


def env_for(**settings) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCLUST_")}
    env.update({f"DEEPCLUST_{k.upper()}": str(v) for k, v in settings.items()})
    env["PYTHONPATH"] = str(REPO)
    return env


def train_model(client, settings_env: dict, X: np.ndarray) -> tuple[str, str]:
    """Upload X, run a short DEC job in this process's child, return (dataset id, model id)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, X)
    dataset = client.post("/v1/datasets", files={"file": ("mnist.npy", buffer.getvalue())}).json()["id"]
    job = client.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": 10,
                                        "params": {"maxiter": 20, "update_interval": 10, "kmeans_n_init": 1},
                                        "pretrain": {"epochs": 1}}).json()
    if settings_env.get("RUN_HERE"):
        subprocess.run([sys.executable, "-c", f"from worker.run import run_job; run_job({job['id']!r})"],
                       env=settings_env, cwd=REPO, check=True, capture_output=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = client.get(f"/v1/jobs/{job['id']}").json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    if state["status"] != "succeeded":
        raise SystemExit(f"training failed: {state}")
    return dataset, state["model_id"]


def export_model(database_url: str, model_id: str, out: Path) -> tuple[Path, Path]:
    from deepclust.app.core.db import engine_for, new_session
    from deepclust.app.core.results import model_bytes

    with new_session(engine_for(database_url)) as session:
        weights, manifest = model_bytes(session, model_id)
    (out / "weights.safetensors").write_bytes(bytes(weights))
    (out / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return out / "weights.safetensors", out / "manifest.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (postgresql only)")
    parser.add_argument("--clients", type=int, nargs="+", default=[200])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a request counts as timed out")
    parser.add_argument("--targets", nargs="+",
                        default=["predict1", "predict1000", "job", "datasets", "bare1", "bare1000"])
    parser.add_argument("--keep", action="store_true", help="leave the data dir behind")
    add_data_dir_argument(parser)
    args = parser.parse_args()
    if args.db == "sqlite" and args.workers != 1:
        parser.error("the embedded default is one process (deepclust serve); --workers is for postgresql")

    import httpx

    X = load_npz("mnist", args.data_dir)["x"][:2000].reshape(2000, -1).astype(np.float32)
    tmp = Path(tempfile.mkdtemp(prefix="deepclust-load-"))
    port, bare_port = free_port(), free_port()
    schema = None
    headers: dict[str, str] = {}
    if args.db == "sqlite":
        env = env_for(data_dir=tmp / "data")
        server = start([str(BIN / "deepclust"), "serve", "--port", str(port), "--log-level", "warning"],
                       env, tmp, tmp / "serve.log")
        database_url = f"sqlite:///{tmp / 'data' / 'deepclust.db'}"
    else:
        from sqlalchemy import create_engine, text

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        database_url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        env = env_for(data_dir=tmp / "data", database_url=database_url, dispatcher="local", auth="enabled",
                      host="127.0.0.1")
        subprocess.run([str(BIN / "deepclust"), "migrate"], env=env, cwd=tmp, check=True, capture_output=True)
        key = subprocess.run([str(BIN / "deepclust"), "keys", "create", "--name", "bench"], env=env, cwd=tmp,
                             check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {key}"}
        server = start([str(BIN / "uvicorn"), "deepclust.app.main:create_app", "--factory", "--host", "127.0.0.1",
                        "--port", str(port), "--workers", str(args.workers), "--log-level", "warning"],
                       env, REPO, tmp / "serve.log")
    bare = None
    results = []
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) as client:
            dataset_id, model_id = train_model(client, {**env, "RUN_HERE": "1"} if args.db == "postgresql" else env, X)
            job_id = client.get("/v1/jobs").json()["items"][0]["id"]
        weights, manifest = export_model(database_url, model_id, tmp)
        (tmp / "bare_app.py").write_text(BARE_APP)
        bare_env = {**env, "BARE_WEIGHTS": str(weights), "BARE_MANIFEST": str(manifest),
                    "PYTHONPATH": f"{tmp}:{REPO}"}
        bare = start([str(BIN / "uvicorn"), "bare_app:app", "--host", "127.0.0.1", "--port", str(bare_port),
                      "--workers", str(args.workers), "--log-level", "warning"], bare_env, tmp, tmp / "bare.log")
        wait_ready(f"http://127.0.0.1:{bare_port}/docs", bare)

        one = json.dumps({"instances": X[:1].tolist()}).encode()
        thousand = json.dumps({"instances": X[:1000].tolist()}).encode()
        requests = {
            "predict1": (port, raw_request("POST", f"/v1/models/{model_id}/predict", port, one, headers)),
            "predict1000": (port, raw_request("POST", f"/v1/models/{model_id}/predict", port, thousand, headers)),
            "job": (port, raw_request("GET", f"/v1/jobs/{job_id}", port, headers=headers)),
            "datasets": (port, raw_request("GET", "/v1/datasets", port, headers=headers)),
            "bare1": (bare_port, raw_request("POST", "/predict", bare_port, one)),
            "bare1000": (bare_port, raw_request("POST", "/predict", bare_port, thousand)),
        }
        for clients in args.clients:
            for target in args.targets:
                target_port, raw = requests[target]
                # Warm up (model cache, connections) before measuring.
                asyncio.run(load(target_port, raw, min(clients, 4), 1.0, args.timeout))
                row = {"db": args.db, "workers": args.workers, "clients": clients, "target": target,
                       **asyncio.run(load(target_port, raw, clients, args.duration, args.timeout))}
                print(json.dumps(row), flush=True)
                results.append(row)
    finally:
        stopped = stop(server)
        if bare is not None:
            stop(bare)
        print(json.dumps({"server_stop_seconds": round(stopped, 2)}), flush=True)
        if schema is not None:
            from sqlalchemy import create_engine, text

            admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        if not args.keep:
            subprocess.run(["rm", "-rf", str(tmp)])
        else:
            print(f"data kept in {tmp}", file=sys.stderr)

    print("\n| db | workers | clients | target | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['db']} | {r['workers']} | {r['clients']} | {r['target']} | {r['throughput_rps']} | "
              f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} |")


if __name__ == "__main__":
    main()
