"""What the server runs, as the client holds it: a job, a sweep, a batch prediction. Each is the
resource as last fetched, with the calls that read its results and a ``wait()`` that polls it
(a progress bar where the terminal shows one) until it has finished."""
from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .errors import Conflict, JobFailed

if TYPE_CHECKING:
    from . import Client

FINISHED = ("succeeded", "failed", "cancelled")


class Prediction(NamedTuple):
    """What ``Client.predict`` returns: ``labels, probabilities = client.predict(...)``."""

    labels: np.ndarray          # (n,) int64
    probabilities: np.ndarray   # (n, n_clusters) float, rows sum to 1


class _Resource:
    """A resource the server runs, as last fetched (``resource``); ``refresh()`` fetches it again
    from ``_path``/{id}."""

    _path: str
    _kind: str  # "job", "sweep", "prediction": in messages, error codes and JobFailed's details

    def __init__(self, client: Client, resource: dict):
        self.client = client
        self.resource = resource

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, status={self.status!r})"

    @property
    def id(self) -> str:
        return self.resource["id"]

    @property
    def status(self) -> str:
        return self.resource["status"]

    def refresh(self) -> dict:
        self.resource = self.client._json("GET", f"{self._path}/{self.id}")
        return self.resource

    def _poll_until_finished(self, bar: str | None, timeout: float | None, poll_seconds: float,
                             console: Any) -> None:
        """Refresh until it has finished; ``bar`` names the function of client/progress.py that
        draws it meanwhile (None: no bar)."""
        interrupted = threading.Event()
        states = _polled(self, self._kind, timeout, poll_seconds, interrupted)
        if bar is None:
            for _ in states:
                pass
            return
        from deepclust.app.client import progress as bars  # rich, only when a bar is wanted

        with _ctrl_c_between_polls(interrupted):
            getattr(bars, bar)(states, console=console)

    def _raise_unless_succeeded(self) -> None:
        if self.status != "succeeded":
            error = self.resource.get("error") or {"code": f"{self._kind}_cancelled",
                                                   "message": f"{self._kind} {self.id} was cancelled"}
            raise JobFailed(409, error["code"], error["message"], {self._kind: self.resource})


# -- a job -------------------------------------------------------------------------------------------

class Job(_Resource):
    """One job on the server. ``resource`` is the job as last fetched; ``refresh()`` fetches it again."""

    _path = "/v1/jobs"
    _kind = "job"

    @property
    def warnings(self) -> list[dict]:
        """``{code, message, details}`` of what a user without labels should know about the result
        (``clusters_emptied``, ``cluster_dominant``, ``restored``, ``k_estimated``), as last fetched."""
        return list(self.resource.get("warnings") or [])

    @property
    def health(self) -> dict | None:
        """The result's label-free health once succeeded (non-empty clusters, the largest one's
        share, the size entropy, what the guard did), as last fetched."""
        return self.resource.get("health")

    @property
    def model_id(self) -> str | None:
        """The job's model once it has succeeded (fetched again if not known yet)."""
        if self.resource.get("model_id") is None and self.status not in FINISHED:
            self.refresh()
        return self.resource.get("model_id")


    def wait(self, progress: bool = True, *, timeout: float | None = None, poll_seconds: float = 1.0,
             raise_on_failure: bool = False, console: Any = None) -> dict:
        """Block until the job has ended; returns the final job resource.

        ``progress`` shows a bar (phase, epoch, loss, ETA), then the job's warnings, one line each
        (also in ``job.warnings`` and the returned resource). ``timeout`` raises ``TimeoutError``
        (the job keeps running). ``raise_on_failure`` raises ``JobFailed`` carrying the job's error
        when it failed or was cancelled.
        """
        self._poll_until_finished("follow" if progress else None, timeout, poll_seconds, console)
        if progress and console is None:  # the CLI passes its console and prints them in its own summary
            from rich.console import Console

            from deepclust.app.client.progress import warning_lines

            for line in warning_lines(self.resource):  # never shown as a plain success with these
                Console(stderr=True).print(f"[yellow]warning[/] {line}", highlight=False)
        if raise_on_failure:
            self._raise_unless_succeeded()
        return self.resource

    def cancel(self) -> dict:
        """Cancel: a queued job at once, a running one within an epoch (``Conflict`` once finished)."""
        self.resource = self.client._json("POST", f"/v1/jobs/{self.id}/cancel")
        return self.resource

    def delete(self) -> None:
        """Delete the job with its model and results (``Conflict`` while queued or running)."""
        self.client.request("DELETE", f"/v1/jobs/{self.id}")

    # -- results (``Conflict`` until the job has succeeded) ---------------------------------------
    def labels(self) -> np.ndarray:
        """The cluster of every training sample, in order."""
        content = self.client.request("GET", f"/v1/jobs/{self.id}/labels", params={"format": "npy"}).content
        return np.load(io.BytesIO(content), allow_pickle=False)

    def confidences(self) -> np.ndarray:
        """The largest soft assignment of every training sample, in order."""
        text = self.client.request("GET", f"/v1/jobs/{self.id}/labels", params={"format": "csv"}).text
        rows = text.splitlines()[1:]
        return np.array([float(row.rsplit(",", 1)[1]) for row in rows], dtype=np.float64)

    def centroids(self) -> np.ndarray:
        """(n_clusters, dim) centres, in the embedding (or the input space for k-means)."""
        return np.asarray(self.client._json("GET", f"/v1/jobs/{self.id}/centroids")["centroids"])

    def metrics(self) -> dict:
        """Cluster sizes, internal metrics, and external ones (acc, nmi, ari) when the data has labels."""
        return self.client._json("GET", f"/v1/jobs/{self.id}/metrics")

    def history(self):
        """One row per epoch (phase, epoch, loss, loss terms, acc/nmi): a pandas DataFrame when
        pandas is installed, else a list of dicts."""
        rows = self.client._json("GET", f"/v1/jobs/{self.id}/history")
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    def logs(self) -> str:
        """What the worker logged for this job: start, device, phases, warnings, a failure's traceback."""
        return self.client.request("GET", f"/v1/jobs/{self.id}/logs").text


# -- comparing runs ----------------------------------------------------------------------------------

JOB_ROW_COLUMNS = ["id", "name", "method", "n_clusters", "seed", "status", "acc", "nmi", "silhouette",
                   "nonempty_clusters", "dataset_id", "model_id", "created_at", "finished_at"]


def job_row(job: dict) -> dict:
    """A job resource of the list as one flat row: its metrics summary as columns."""
    summary = job.get("metrics") or {}
    return {c: summary.get(c) if c in ("acc", "nmi", "silhouette", "nonempty_clusters") else job.get(c)
            for c in JOB_ROW_COLUMNS}


# -- a sweep -----------------------------------------------------------------------------------------

class Sweep(_Resource):
    """One sweep on the server: a job per (K, seed), then a label-free recommendation of K.
    ``resource`` is the sweep as last fetched; ``refresh()`` fetches it again."""

    _path = "/v1/sweeps"
    _kind = "sweep"

    def wait(self, progress: bool = True, *, timeout: float | None = None, poll_seconds: float = 2.0,
             raise_on_failure: bool = False, console: Any = None) -> dict:
        """Block until every job of the sweep has ended and it has settled; returns the final sweep.

        ``progress`` shows one bar over its jobs (done/total, running, failed, ETA). ``timeout``
        raises ``TimeoutError`` (the sweep keeps running). ``raise_on_failure`` raises ``JobFailed``
        carrying the sweep's error when it failed or was cancelled."""
        self._poll_until_finished("follow_sweep" if progress else None, timeout, poll_seconds, console)
        if raise_on_failure:
            self._raise_unless_succeeded()
        return self.resource

    def result(self) -> dict:
        """``{"recommended": {"n_clusters", "job_id", "seed", "model_id"}, "table": [...]}`` once the
        sweep has succeeded (``Conflict`` before, or when it failed or was cancelled)."""
        if self.resource.get("result") is None:
            self.refresh()
        if self.resource.get("result") is None:
            raise Conflict(409, "sweep_not_succeeded", f"Sweep {self.id} is {self.status}; its result exists "
                           "once it has succeeded.", {"status": self.status})
        return self.resource["result"]

    def recommended(self) -> Job:
        """The recommended run (its K chosen without labels) as a ``Job``."""
        return self.client.job(self.result()["recommended"]["job_id"])

    def table(self):
        """One row per succeeded job: n_clusters, seed, job_id, every criterion, selected, and
        acc/nmi/ari when the dataset has labels. A pandas DataFrame when pandas is installed,
        else a list of dicts."""
        rows = self.result()["table"]
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    def plot(self, path: str | os.PathLike | None = None) -> bytes | Path:
        """The criteria against K as PNG bytes, or written to ``path`` (returned)."""
        content = self.client.request("GET", f"/v1/sweeps/{self.id}/plot.png").content
        if path is None:
            return content
        path = Path(path)
        path.write_bytes(content)
        return path

    def jobs(self, as_frame: bool = False):
        """The sweep's jobs (``Client.list_jobs(sweep_id=...)``)."""
        return self.client.list_jobs(sweep_id=self.id, as_frame=as_frame)

    def cancel(self) -> dict:
        """Cancel every job of the sweep that has not ended (``Conflict`` once finished)."""
        self.resource = self.client._json("POST", f"/v1/sweeps/{self.id}/cancel")
        return self.resource


# -- a batch prediction ------------------------------------------------------------------------------

class BatchPrediction(_Resource):
    """One batch prediction on the server (``Client.start_prediction``): a model applied to a stored
    dataset in the workers. ``resource`` is it as last fetched; ``refresh()`` fetches it again.
    (``Prediction`` is what the synchronous ``Client.predict`` returns: labels and probabilities.)"""

    _path = "/v1/predictions"
    _kind = "prediction"

    def wait(self, progress: bool = True, *, timeout: float | None = None, poll_seconds: float = 1.0,
             raise_on_failure: bool = False, console: Any = None) -> dict:
        """Block until the prediction has ended; returns its final resource. ``progress`` shows a bar
        (samples predicted, ETA); ``timeout`` raises ``TimeoutError`` (it keeps running);
        ``raise_on_failure`` raises ``JobFailed`` with its error when it failed or was cancelled."""
        self._poll_until_finished("follow_prediction" if progress else None, timeout, poll_seconds, console)
        if raise_on_failure:
            self._raise_unless_succeeded()
        return self.resource

    def labels(self, probabilities: bool = False) -> np.ndarray | Prediction:
        """The cluster of every sample of the dataset, in order (``Conflict`` until it has
        succeeded); with ``probabilities=True`` a ``Prediction`` of labels and probabilities, as
        ``Client.predict`` gives."""
        params = {"format": "npy", **({"probabilities": "true"} if probabilities else {})}
        content = self.client.request("GET", f"/v1/predictions/{self.id}/labels", params=params).content
        array = np.load(io.BytesIO(content), allow_pickle=False)
        if not probabilities:
            return array
        return Prediction(np.asarray(array["labels"], dtype=np.int64), np.asarray(array["probabilities"]))

    def cancel(self) -> dict:
        """Cancel: a queued prediction at once, a running one within a batch (``Conflict`` once finished)."""
        self.resource = self.client._json("POST", f"/v1/predictions/{self.id}/cancel")
        return self.resource

    def delete(self) -> None:
        """Delete the prediction with its labels (``Conflict`` while queued or running)."""
        self.client.request("DELETE", f"/v1/predictions/{self.id}")

    def logs(self) -> str:
        """What the worker logged for this prediction: each attempt, where a retry resumed, a failure."""
        return self.client.request("GET", f"/v1/predictions/{self.id}/logs").text


def _polled(resource, kind: str, timeout: float | None, poll_seconds: float,
            interrupted: threading.Event) -> Iterator[dict]:
    """A job's, a sweep's or a batch prediction's resource, refreshed every ``poll_seconds`` until it has finished;
    ``TimeoutError`` past ``timeout``, ``KeyboardInterrupt`` when ``interrupted`` is set."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        yield resource.refresh()
        if resource.status in FINISHED:
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{kind} {resource.id} is still {resource.status} after {timeout} s")
        if interrupted.wait(poll_seconds):
            raise KeyboardInterrupt


@contextmanager
def _ctrl_c_between_polls(interrupted: threading.Event) -> Iterator[None]:
    """Ctrl-C while the progress bar draws: a KeyboardInterrupt raised inside Rich's renderer can
    leave its lock held and hang the bar's exit, so the signal only sets ``interrupted`` and the
    poll loop raises it between two polls (the main thread only: signals are delivered there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
