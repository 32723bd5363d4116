"""The log of one job, as a file in the artifact store (``logs/<job_id>.log``), readable by the API.

The process that runs the job captures everything logged while it runs (its start, device,
phases, warnings, a failure's traceback) with ``capture``; other processes that decide about the
job (the local runner when the process dies, the reaper when its heartbeat stops) add a line
with ``append``. Every attempt appends, so a retried job shows why it was retried.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from deepclust.app.core.db import utcnow
from deepclust.app.core.storage import ArtifactStore, log_key

FORMAT = "%(asctime)s %(levelname)s %(message)s"


def append(store: ArtifactStore, job_id: str, message: str, level: str = "INFO") -> None:
    """One line in the job's log, from a process other than the job's own."""
    path = store.local_path(log_key(job_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{stamp} {level} {message}\n")


@contextmanager
def capture(store: ArtifactStore, job_id: str, level: int = logging.INFO) -> Iterator[None]:
    """Everything logged in this process meanwhile, and Python warnings, also go to the job's log.

    The process runs one job at a time (a child of the local runner, or a Celery pool process
    that runs one task), so the root logger is the job's."""
    path = store.local_path(log_key(job_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each distinct warning once, not silenced
            yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


def read(store: ArtifactStore, job_id: str, max_bytes: int = 4 << 20) -> str:
    """The job's log ('' before it has one); only the end of a very long one."""
    path = store.local_path(log_key(job_id))
    if not path.exists():
        return ""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size > max_bytes:
            f.seek(size - max_bytes)
            f.readline()  # start at a line boundary
            head = b"[... earlier lines left out ...]\n"
            return (head + f.read()).decode("utf-8", "replace")
        return f.read().decode("utf-8", "replace")
