"""Docker cannot run here: read the Dockerfile and docker-compose.yml and check what they promise."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def dockerfile_stages() -> dict[str, dict]:
    """Each stage's base image and instructions, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            base, _, name = rest.partition(" AS ")
            current = stages.setdefault(name.strip(), {"from": base.strip(), "lines": []})
        elif current is not None:
            current["lines"].append((instruction.upper(), rest))
    return stages


def instructions(stage: dict, kind: str) -> list[str]:
    return [rest for instruction, rest in stage["lines"] if instruction == kind]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_dockerfile_has_a_slim_api_target_and_a_cuda_worker_target():
    stages = dockerfile_stages()
    assert set(stages) == {"source", "api", "worker"}
    copied = " ".join(instructions(stages["source"], "COPY"))
    assert all(part in copied for part in ("alembic.ini", "migrations", "models", "app", "worker"))
    args = (ROOT / "Dockerfile").read_text()
    assert "${PYTHON_IMAGE}" == stages["api"]["from"] and re.search(r"ARG PYTHON_IMAGE=python:3\.\d+-slim", args)
    assert "${CUDA_IMAGE}" == stages["worker"]["from"] and re.search(r"ARG CUDA_IMAGE=nvidia/cuda:\S+-runtime", args)

    api_runs, worker_runs = " ".join(instructions(stages["api"], "RUN")), " ".join(instructions(stages["worker"], "RUN"))
    assert "download.pytorch.org/whl/cpu" in api_runs  # CPU torch for the API
    assert "--index-url ${TORCH_INDEX}" in worker_runs and re.search(r"ARG TORCH_INDEX=\S+/whl/cu\d+", args)
    # encoders on the GPU: the CUDA build of onnxruntime in place of the CPU one, never both
    assert "pip uninstall -y onnxruntime" in worker_runs and "onnxruntime-gpu" in worker_runs
    assert "onnxruntime-gpu" not in api_runs
    for stage in (stages["api"], stages["worker"]):
        assert any("pip install -e ." in run for run in instructions(stage, "RUN"))
        assert "--from=source /app ./" in instructions(stage, "COPY")
        assert instructions(stage, "USER") == ["deepclust"]
    assert shlex.split(instructions(stages["api"], "CMD")[0].strip("[]").replace(",", " ")) == \
        ["deepclust", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert shlex.split(instructions(stages["worker"], "CMD")[0].strip("[]").replace(",", " "))[:2] == \
        ["deepclust", "worker"]


def test_compose_services_and_their_order(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["deepclust", "migrate"] and services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["command"][:2] == ["deepclust", "serve"]
    assert services["worker"]["command"][:2] == ["deepclust", "worker"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    stages = dockerfile_stages()
    for name, target in (("migrate", "api"), ("api", "api"), ("worker", "worker")):
        assert services[name]["build"]["target"] == target and target in stages


def test_compose_wires_database_broker_and_a_shared_data_volume(compose):
    services = compose["services"]
    for name in ("migrate", "api", "worker"):
        env = services[name]["environment"]
        assert env["DEEPCLUST_DISPATCHER"] == "celery"
        assert "@postgres:5432/" in env["DEEPCLUST_DATABASE_URL"]
        assert env["DEEPCLUST_BROKER_URL"].startswith("redis://redis:6379/")
    data_dir = services["api"]["environment"]["DEEPCLUST_DATA_DIR"]
    mounts = {name: services[name]["volumes"] for name in ("api", "worker")}
    assert mounts["api"] == mounts["worker"] == [f"data:{data_dir}"]
    assert "data" in compose["volumes"]


def test_worker_reserves_an_nvidia_gpu(compose):
    devices = compose["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert compose["services"]["worker"]["environment"]["DEEPCLUST_DEVICE"] == "cuda"
    assert "deploy" not in compose["services"]["api"]


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", ".git"} <= set(ignored)
