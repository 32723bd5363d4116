"""Batch access to the training data, on the training device.

Where the rows live (``placement``): on the CPU as before, an in-memory array converted once,
a ``numpy.memmap`` read batch by batch. On a GPU a dataset whose scaled float32 copy fits in the
device's free memory (less a safety margin) is moved there once, in chunks, even when it was
opened memory-mapped; a batch is then an index into it. One that does not fit stays on the host
and each batch goes over from pinned memory with a non-blocking copy.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from ..preprocessing import Scaler


# Device memory kept free beside the dataset: activations, the optimiser, the inference chunks.
SAFETY_FRACTION = 0.25
SAFETY_MIN_BYTES = 2 << 30
CPU_CHUNK = 4096  # rows per inference pass on the CPU (what every result so far was made with)
GPU_CHUNK_BYTES = 256 << 20  # input bytes per inference pass on a GPU


def placement(nbytes: int, device: torch.device, *, memmap: bool, free_bytes: int | None = None) -> str:
    """Where a dataset of ``nbytes`` (its scaled float32 size) lives during training:
    ``"device"`` (converted once and kept there), ``"lazy"`` (on the host, read per batch; on a
    GPU each batch from pinned memory with a non-blocking copy).

    CPU: a memmap is ``"lazy"``, anything else ``"device"`` (unchanged). CUDA: ``"device"`` when
    ``nbytes`` fits in ``free_bytes`` (``torch.cuda.mem_get_info``) less a margin of
    max(25 %, 2 GiB) of it, memory-mapped or not; else ``"lazy"``.
    """
    if device.type != "cuda":
        return "lazy" if memmap else "device"
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    margin = max(int(free_bytes * SAFETY_FRACTION), SAFETY_MIN_BYTES)
    return "device" if nbytes <= free_bytes - margin else "lazy"


def inference_chunk(device: torch.device, row_elements: int) -> int:
    """Rows per full-data inference pass: 4096 on the CPU, about 256 MiB of input on a GPU."""
    if device.type != "cuda":
        return CPU_CHUNK
    return max(CPU_CHUNK, GPU_CHUNK_BYTES // (4 * max(1, row_elements)))


class ArrayData:
    """Rows of ``X`` as scaled float32 tensors on ``device``.

    Kept on the device (``placement`` says ``"device"``): converted and scaled once, so a batch
    is an index into it. Otherwise (a ``numpy.memmap`` on the CPU, or data larger than a GPU's
    free memory) each batch reads just its rows.
    """

    def __init__(self, X: np.ndarray, scaler: Scaler, device: torch.device, *, free_bytes: int | None = None):
        self.n_samples = len(X)
        self.sample_shape = tuple(X.shape[1:])
        self.device = device
        self.scaler = scaler
        self.row_elements = int(np.prod(self.sample_shape))
        nbytes = self.n_samples * self.row_elements * 4
        self.placement = placement(nbytes, device, memmap=_is_memmap(X), free_bytes=free_bytes)
        self._lazy = self.placement == "lazy"
        self._pinned = self._lazy and device.type == "cuda"
        if self._lazy:
            self._source = X
        elif device.type == "cuda":
            self._tensor = self._to_device(X)
        else:
            self._tensor = scaler(as_tensor(np.asarray(X)).to(device=device, dtype=torch.float32))

    def _to_device(self, X: np.ndarray) -> torch.Tensor:
        """``X`` scaled on the device, copied over in chunks: a memmap is read once, piece by piece,
        never held whole in host memory."""
        out = torch.empty((self.n_samples, *self.sample_shape), dtype=torch.float32, device=self.device)
        step = max(1, (64 << 20) // max(1, self.row_elements * X.dtype.itemsize))
        for start in range(0, self.n_samples, step):
            part = as_tensor(np.ascontiguousarray(X[start:start + step])).pin_memory()
            out[start:start + len(part)] = self.scaler(part.to(self.device, non_blocking=True).to(torch.float32))
        return out

    def __len__(self) -> int:
        return self.n_samples

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """The scaled rows at ``index``, a LongTensor best already on ``device`` (see ``order``)."""
        if not self._lazy:
            return self._tensor.index_select(0, index.to(self.device))
        rows = np.ascontiguousarray(self._source[index.cpu().numpy()])
        if self._pinned:  # page-locked, so the copy runs while the host goes on
            tensor = as_tensor(rows).pin_memory().to(self.device, non_blocking=True)
            return self.scaler(tensor.to(torch.float32))
        return self.scaler(torch.from_numpy(rows).to(device=self.device, dtype=torch.float32))

    def order(self, epoch: int, seed: int, order: str) -> torch.Tensor:
        """``batch_order`` moved once per epoch to where ``rows`` indexes: no per-batch index copy."""
        return batch_order(self.n_samples, epoch, seed, order).to("cpu" if self._lazy else self.device)

    def chunks(self, size: int | None = None) -> Iterator[torch.Tensor]:
        """All rows in order, ``size`` at a time (default ``inference_chunk``: 4096 on the CPU,
        large chunks on a GPU)."""
        size = size or inference_chunk(self.device, self.row_elements)
        for start in range(0, self.n_samples, size):
            if not self._lazy:
                yield self._tensor[start:start + size]
            else:
                yield self.rows(torch.arange(start, min(start + size, self.n_samples)))


def as_tensor(X: np.ndarray) -> torch.Tensor:
    """``X`` as a tensor sharing its memory. A read-only array (a slice of a memory-mapped
    dataset) is fine: the library only reads its input, so torch's warning that it "does not
    support non-writable tensors" would only be noise in a job's log."""
    if X.flags.writeable:
        return torch.as_tensor(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(X)


def _is_memmap(X) -> bool:
    while X is not None:
        if isinstance(X, np.memmap):
            return True
        X = getattr(X, "base", None)
    return False


def batch_order(n_samples: int, epoch: int, seed: int, order: str) -> torch.Tensor:
    """The sample order of one pass over the data.

    ``sequential`` is data order every pass (DEC-keras, IDEC-pytorch); ``shuffle`` a fresh
    permutation every pass; ``sequential_then_shuffle`` data order first, then permutations
    (CDC's code). Each permutation is drawn from its own generator seeded by (seed, epoch), so
    a run resumed at any epoch sees exactly the batches an uninterrupted run would.
    """
    if order == "sequential" or (order == "sequential_then_shuffle" and epoch == 0):
        return torch.arange(n_samples)
    if order in ("shuffle", "sequential_then_shuffle"):
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
        return torch.randperm(n_samples, generator=gen)
    raise ValueError(f"unknown batch order {order!r}")
