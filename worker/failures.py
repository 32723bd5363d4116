"""Why an attempt ended in an exception: the infrastructure's fault (retried with backoff) or the
job's own (failed once, with an error code the user can act on).

Codes of the job's own failures: ``loss_not_finite``, ``out_of_memory``, ``invalid_input``,
``training_failed``; ``runtime_exceeded`` comes from the reporter's limit, not from an exception.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from deepclust.models import LossNotFinite

log = logging.getLogger(__name__)
T = TypeVar("T")

# The database (or another service) could not be reached: nothing is wrong with the job itself.
_UNREACHABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, ConnectionError, TimeoutError)


def is_infrastructure(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _UNREACHABLE)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, oom):
        return True
    # torch's CPU allocator and some CUDA kernels raise a plain RuntimeError.
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# CUDA's caching allocator: "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; ...)".
_ASKED = re.compile(r"Tried to allocate (\d+(?:\.\d+)?\s*[KMGT]?i?B)")


def memory_asked(exc: BaseException) -> str | None:
    """The allocation that failed, as the CUDA message gives it (``"2.00 GiB"``), if it does."""
    match = _ASKED.search(str(exc))
    return match.group(1) if match else None


def batch_size_of(phase: str | None, params: dict | None) -> int | None:
    """The batch size the phase trained with: ``pretrain_batch_size`` while pretraining, else
    ``batch_size`` (None when the job's params do not say)."""
    params = params or {}
    if phase == "pretrain" and "pretrain_batch_size" in params:
        return params["pretrain_batch_size"]
    return params.get("batch_size")


def job_error(exc: BaseException, phase: str | None, params: dict | None = None) -> dict:
    """The ``error`` of a job that failed for its own reason: ``{"code", "message"}``. ``params``:
    the job's (flat) method params, so that an out-of-memory message names the batch size."""
    during = f" during {phase}" if phase else ""
    first_line = (str(exc).splitlines() or [""])[0][:300]
    if isinstance(exc, LossNotFinite):
        return {"code": "loss_not_finite",
                "message": f"The loss became {exc.logs.get('loss')} in {exc.phase} epoch {exc.epoch}: training "
                           "diverged. Lower the learning rate (params.lr, pretrain.lr) or bring the data to a "
                           "smaller scale (e.g. standardise it before uploading)."}
    if _is_out_of_memory(exc):
        batch, asked = batch_size_of(phase, params), memory_asked(exc)
        facts = ", ".join(f for f in (f"batch size {batch}" if batch else "",
                                      f"{asked} asked for" if asked else "") if f)
        return {"code": "out_of_memory",
                "message": f"Out of memory{during}" + (f" ({facts})" if facts else "") + ": reduce the batch size "
                           "(params.batch_size, pretrain.batch_size), the network (hidden_dims, embedding_dim) or "
                           "the dataset, or run on a device with more memory. "
                           f"({type(exc).__name__}: {first_line})"}
    code = "invalid_input" if isinstance(exc, (ValueError, LookupError)) else "training_failed"
    return {"code": code, "message": f"{type(exc).__name__}: {exc}"}


def retry_while_unreachable(action: Callable[[], T], what: str, timeout: float,
                            interval: tuple[float, float] = (0.5, 10.0)) -> T:
    """``action()``, tried again with growing pauses while the infrastructure is unreachable, for
    up to ``timeout`` seconds; then (or on any other error) its exception propagates."""
    deadline = time.monotonic() + timeout
    pause, tries = interval[0], 0
    while True:
        try:
            result = action()
        except Exception as exc:
            if not is_infrastructure(exc) or time.monotonic() + pause > deadline:
                raise
            tries += 1
            if tries == 1:
                log.warning("%s failed (%s: %s); retrying for up to %.0f s", what, type(exc).__name__,
                            str(exc).splitlines()[0] if str(exc) else "", timeout)
            time.sleep(pause)
            pause = min(pause * 2, interval[1])
            continue
        if tries:
            log.info("%s succeeded after %d retries", what, tries)
        return result
