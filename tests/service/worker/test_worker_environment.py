"""Worker hygiene (issue #26): the device and library versions a worker reports (job log,
``deepclust worker --check``), and an out-of-memory failure that names the batch size and the
memory asked for."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from deepclust.worker import environment
from deepclust.worker.failures import job_error, memory_asked

CUDA_OOM = ("CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of 139.8 GiB of which "
            "1.2 GiB is free. Including non-PyTorch memory, this process has 138.5 GiB memory in use.")


def test_an_out_of_memory_error_names_the_batch_size_and_the_memory_asked_for():
    oom = torch.OutOfMemoryError(CUDA_OOM)
    assert memory_asked(oom) == "2.50 GiB"
    error = job_error(oom, "pretrain", {"pretrain_batch_size": 4096, "batch_size": 256})
    assert error["code"] == "out_of_memory"
    assert "during pretrain (batch size 4096, 2.50 GiB asked for)" in error["message"]
    assert "reduce the batch size" in error["message"]
    error = job_error(oom, "finetune", {"pretrain_batch_size": 4096, "batch_size": 256})
    assert "(batch size 256, 2.50 GiB asked for)" in error["message"]
    # a host-side MemoryError says what it knows
    error = job_error(MemoryError(), "init", {})
    assert error["code"] == "out_of_memory" and error["message"].startswith("Out of memory during init: reduce")


def test_the_device_and_library_versions_are_described():
    info = environment.describe("cpu")
    assert info["usable"] and info["device"] == "cpu"
    assert set(info["versions"]) == {"torch", "cuda", "cudnn", "numpy", "scikit-learn", "onnxruntime"}
    assert info["versions"]["torch"] == torch.__version__
    assert "CPUExecutionProvider" in info["onnxruntime_providers"]  # encoders always have the CPU
    line = environment.summary(info)
    assert line.startswith("device cpu (") and f"torch {torch.__version__}" in line
    if not torch.cuda.is_available():
        info = environment.describe("cuda")
        assert not info["usable"] and "sees none" in info["problem"]
        assert "NOT USABLE" in environment.summary(info)


def _check(device):
    env = {**os.environ, "DEEPCLUST_DEVICE": device}
    return subprocess.run([sys.executable, "-m", "deepclust.app.cli", "worker", "--check"], env=env,
                          capture_output=True, text=True, timeout=120)


def test_worker_check_prints_json_and_exits_by_whether_the_device_is_usable():
    done = _check("cpu")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["device"] == "cpu"
    if not torch.cuda.is_available():
        done = _check("cuda")
        assert done.returncode == 1 and json.loads(done.stdout)["usable"] is False
