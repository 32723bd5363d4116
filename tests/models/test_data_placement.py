"""Where the training data lives (models/training/data.py ``placement``): unchanged on the CPU;
on a GPU on the device when it fits with a margin (even memory-mapped), else pinned host batches."""
from __future__ import annotations

import numpy as np
import torch

from deepclust.models.preprocessing import Scaler
from deepclust.models.training.data import ArrayData, inference_chunk, placement

GiB = 1 << 30
CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


def test_cpu_keeps_the_old_behaviour():
    assert placement(10 * GiB, CPU, memmap=False) == "device"
    assert placement(10, CPU, memmap=True) == "lazy"
    assert inference_chunk(CPU, 784) == 4096


def test_gpu_moves_what_fits_with_a_margin_memmap_or_not():
    free = 100 * GiB  # margin 25 GiB
    assert placement(70 * GiB, CUDA, memmap=True, free_bytes=free) == "device"
    assert placement(75 * GiB, CUDA, memmap=False, free_bytes=free) == "device"
    assert placement(76 * GiB, CUDA, memmap=False, free_bytes=free) == "lazy"
    # a small card: the 2 GiB floor of the margin
    assert placement(GiB, CUDA, memmap=True, free_bytes=4 * GiB) == "device"
    assert placement(3 * GiB, CUDA, memmap=True, free_bytes=4 * GiB) == "lazy"
    assert placement(1, CUDA, memmap=False, free_bytes=GiB) == "lazy"


def test_gpu_inference_chunks_are_large():
    assert inference_chunk(CUDA, 784) == (256 << 20) // (4 * 784)  # 85k MNIST rows at once
    assert inference_chunk(CUDA, 10**7) == 4096


def test_array_data_on_cpu(tmp_path):
    X = np.arange(60, dtype=np.float32).reshape(20, 3)
    np.save(tmp_path / "x.npy", X)
    for source, where in ((X, "device"), (np.load(tmp_path / "x.npy", mmap_mode="r"), "lazy")):
        data = ArrayData(source, Scaler("minmax", 0.0, 0.5), CPU)
        assert data.placement == where
        assert torch.equal(data.rows(torch.tensor([3, 1])), torch.from_numpy(X[[3, 1]] * 0.5))
        assert torch.equal(torch.cat(list(data.chunks())), torch.from_numpy(X * 0.5))
