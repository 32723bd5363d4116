"""Batch access to the training data, on the training device, without copying a memmap whole."""
from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from ..preprocessing import Scaler


class ArrayData:
    """Rows of ``X`` as scaled float32 tensors on ``device``.

    An in-memory array is converted and scaled once and kept on the device, so a batch is an
    index into it. A ``numpy.memmap`` stays on disk: each batch reads just its rows.
    """

    def __init__(self, X: np.ndarray, scaler: Scaler, device: torch.device):
        self.n_samples = len(X)
        self.sample_shape = tuple(X.shape[1:])
        self.device = device
        self.scaler = scaler
        self._lazy = _is_memmap(X)
        if self._lazy:
            self._source = X
        else:
            self._tensor = scaler(as_tensor(np.asarray(X)).to(device=device, dtype=torch.float32))

    def __len__(self) -> int:
        return self.n_samples

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """The scaled rows at ``index``, a LongTensor best already on ``device`` (see ``order``)."""
        if not self._lazy:
            return self._tensor.index_select(0, index.to(self.device))
        rows = np.ascontiguousarray(self._source[index.cpu().numpy()])
        return self.scaler(torch.from_numpy(rows).to(device=self.device, dtype=torch.float32))

    def order(self, epoch: int, seed: int, order: str) -> torch.Tensor:
        """``batch_order`` moved once per epoch to where ``rows`` indexes: no per-batch index copy."""
        return batch_order(self.n_samples, epoch, seed, order).to("cpu" if self._lazy else self.device)

    def chunks(self, size: int = 4096) -> Iterator[torch.Tensor]:
        """All rows in order, ``size`` at a time."""
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
