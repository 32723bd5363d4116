"""A Python client of the deepclust HTTP API, light enough for a notebook.

    from deepclust.app.client import Client

    api = Client("http://127.0.0.1:8000")                 # key=... when the server wants one
    ds = api.upload_dataset(X, labels=y, name="digits")   # an array, or a path in any dataset format
    job = api.start_job(ds["id"], "dec", 10, pretrain={"epochs": 50})
    job.wait()                                            # a progress bar: phase, epoch, loss, ETA
    labels, centroids, metrics = job.labels(), job.centroids(), job.metrics()
    labels_new, proba = api.predict(job.model_id, X_new)

    sweep = api.start_sweep(ds["id"], "dec", range(5, 16), seeds=[0, 1, 2])   # choosing K
    sweep.wait()                                          # a bar over its jobs
    sweep.table(); sweep.plot("sweep.png"); best = sweep.recommended()
    runs = api.list_jobs(method="dec", as_frame=True)     # compare runs (acc/nmi, silhouette, ...)

    batch = api.start_prediction(job.model_id, ds_new["id"])   # a whole stored dataset, in the workers
    batch.wait(); labels_new = batch.labels()                  # batch.labels(probabilities=True): both

It speaks HTTP with httpx and hands back numpy arrays and plain dicts; it imports neither torch
nor the server's code. Every error answer of the API is raised as an ``DeepclustError`` subclass that
carries the API's ``status``, ``code``, ``message`` and ``details``.
"""
from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import httpx
import numpy as np

from deepclust.app.datasets.ingest import formats

DEFAULT_URL = "http://127.0.0.1:8000"
FINISHED = ("succeeded", "failed", "cancelled")

__all__ = ["Client", "Job", "Sweep", "Prediction", "BatchPrediction", "DeepclustError", "BadRequest", "Unauthorized", "NotFound", "Conflict",
           "TooLarge", "UnsupportedMediaType", "InvalidRequest", "ServiceUnavailable", "ServerError",
           "ConnectionFailed", "JobFailed"]


# -- errors ------------------------------------------------------------------------------------------

class DeepclustError(Exception):
    """An error answer of the API: its HTTP ``status`` and the body's ``code``, ``message``, ``details``."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(f"{message} [{status} {code}]")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class BadRequest(DeepclustError):
    """400: the request could not be parsed."""


class Unauthorized(DeepclustError):
    """401: no API key, or one the server does not know."""


class NotFound(DeepclustError):
    """404: no such id (or it belongs to another tenant)."""


class Conflict(DeepclustError):
    """409: the resource is in the wrong state (e.g. labels of a job that has not succeeded)."""


class TooLarge(DeepclustError):
    """413: the upload is over the server's size limit."""


class UnsupportedMediaType(DeepclustError):
    """415: a file format or content type the server does not take."""


class InvalidRequest(DeepclustError):
    """422: well-formed, but the content is invalid (params out of range, wrong shape, ...)."""


class ServiceUnavailable(DeepclustError):
    """503: a dependency of the server (database, broker) is down; try again later."""


class ServerError(DeepclustError):
    """Any other error status (a 500 is a server bug worth reporting)."""


class ConnectionFailed(DeepclustError):
    """The server could not be reached at all (status 0)."""


class JobFailed(DeepclustError):
    """Raised by ``Job.wait(raise_on_failure=True)`` when the job failed or was cancelled."""


_BY_STATUS: dict[int, type[DeepclustError]] = {400: BadRequest, 401: Unauthorized, 404: NotFound, 409: Conflict,
                                         413: TooLarge, 415: UnsupportedMediaType, 422: InvalidRequest,
                                         503: ServiceUnavailable}


def error_from_response(response: httpx.Response) -> DeepclustError:
    """The typed exception for an error answer, from the API's error body when it has one."""
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details") or {}
    except (ValueError, KeyError, TypeError):  # not the API's shape: a proxy, a crash page
        code, message, details = "http_error", response.text[:500] or response.reason_phrase, {}
    return _BY_STATUS.get(response.status_code, ServerError)(response.status_code, code, message, details)


# -- results -----------------------------------------------------------------------------------------

class Prediction(NamedTuple):
    """What ``Client.predict`` returns: ``labels, probabilities = client.predict(...)``."""

    labels: np.ndarray          # (n,) int64
    probabilities: np.ndarray   # (n, n_clusters) float, rows sum to 1


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _file_part(data: Any, default_name: str, opened: list[BinaryIO]) -> tuple[str, Any]:
    """A multipart file part from an array (sent as .npy), a path (streamed), or bytes."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        handle = open(path, "rb")
        opened.append(handle)
        return path.name, handle
    if isinstance(data, (bytes, bytearray)):
        return default_name, bytes(data)
    array = np.asarray(data)
    if array.dtype == object:
        raise TypeError("arrays must be numeric; this one holds Python objects")
    return f"{Path(default_name).stem}.npy", _npy_bytes(array)


# -- the client --------------------------------------------------------------------------------------

class Client:
    """The deepclust API at ``url`` (default: ``$DEEPCLUST_API`` or http://127.0.0.1:8000).

    ``key`` (default: ``$DEEPCLUST_KEY``) is sent as ``Authorization: Bearer <key>``; a server
    on 127.0.0.1 with the embedded defaults needs none. Use as a context manager, or ``close()``.
    """

    def __init__(self, url: str | None = None, key: str | None = None, *, timeout: float = 300.0,
                 transport: httpx.BaseTransport | None = None):
        self.url = (url or os.environ.get("DEEPCLUST_API") or DEFAULT_URL).rstrip("/")
        key = key if key is not None else os.environ.get("DEEPCLUST_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- plumbing ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Send one request; an error answer is raised as its ``DeepclustError`` subclass."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(0, "connection_failed", f"Cannot reach the deepclust API at {self.url}: "
                                   f"{exc or type(exc).__name__}. Is `deepclust serve` running there?") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs) -> Any:
        response = self.request(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()

    def _upload(self, path: str, parts: Mapping[str, Any], fields: Mapping[str, Any], **kwargs) -> Any:
        opened: list[BinaryIO] = []
        try:
            files = {name: _file_part(data, f"{name}.npy", opened) for name, data in parts.items() if data is not None}
            data = {k: str(v) for k, v in fields.items() if v is not None}
            return self._json("POST", path, files=files, data=data, **kwargs)
        finally:
            for handle in opened:
                handle.close()

    # -- service ----------------------------------------------------------------------------------
    def ready(self) -> dict:
        """``/readyz``: the database and the broker answer (``ServiceUnavailable`` otherwise)."""
        return self._json("GET", "/readyz")

    def methods(self) -> list[dict]:
        """Every method with its params schema, defaults, pretraining settings and input kinds."""
        return self._json("GET", "/v1/methods")["items"]

    # -- datasets ---------------------------------------------------------------------------------
    def upload_dataset(self, path_or_array: Any, labels: Any = None, name: str | None = None, *,
                       label_column: str | int | None = None, image_size: str | None = None,
                       color: str | None = None) -> dict:
        """Upload a dataset; returns the dataset resource.

        ``path_or_array``: a file in any format the API takes ({data_formats}, image archives
        {archive_formats}), or an array (sent as .npy). ``labels`` (optional, only for metrics): an
        array, or a .npy / one-label-per-line file; or name a {label_column_formats} column with
        ``label_column``.
        """
        if name is None and not isinstance(path_or_array, (str, os.PathLike)):
            name = "array"
        return self._upload("/v1/datasets", {"file": path_or_array, "labels": labels},
                            {"name": name, "label_column": label_column, "image_size": image_size, "color": color})

    def datasets(self, limit: int = 50, offset: int = 0) -> list[dict]:
        return self._json("GET", "/v1/datasets", params={"limit": limit, "offset": offset})["items"]

    def dataset(self, dataset_id: str) -> dict:
        return self._json("GET", f"/v1/datasets/{dataset_id}")

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset and its finished jobs and models (``Conflict`` while one of its jobs runs)."""
        self.request("DELETE", f"/v1/datasets/{dataset_id}")

    # -- encoders ---------------------------------------------------------------------------------
    def upload_encoder(self, path_or_bytes: str | os.PathLike | bytes, input_size: str | tuple[int, int], color: str,
                       *, name: str | None = None, mean: Any = None, std: Any = None, input_name: str | None = None,
                       output_name: str | None = None) -> dict:
        """Upload a pretrained image encoder (an ONNX file: one input N×C×H×W float32, one output
        N×D); returns the encoder resource. ``input_size``: ``"224,224"`` or ``(224, 224)``;
        ``color``: rgb or grayscale; ``mean``/``std``: per channel, applied after scaling pixels to
        [0, 1] (sequences or "0.485,0.456,0.406")."""
        def joined(value: Any) -> str | None:
            return None if value is None or isinstance(value, str) else ",".join(str(float(v)) for v in value)

        if name is None and not isinstance(path_or_bytes, (str, os.PathLike)):
            name = "encoder"
        size = input_size if isinstance(input_size, str) else ",".join(str(int(v)) for v in input_size)
        return self._upload("/v1/encoders", {"file": path_or_bytes},
                            {"name": name, "input_size": size, "color": color, "mean": joined(mean) or mean,
                             "std": joined(std) or std, "input_name": input_name, "output_name": output_name})

    def list_encoders(self, limit: int = 50, offset: int = 0) -> list[dict]:
        """Your encoders, newest first."""
        return self._json("GET", "/v1/encoders", params={"limit": limit, "offset": offset})["items"]

    def encoder(self, encoder_id: str) -> dict:
        return self._json("GET", f"/v1/encoders/{encoder_id}")

    def delete_encoder(self, encoder_id: str) -> None:
        """Delete an encoder (``Conflict`` while a queued or running job uses it)."""
        self.request("DELETE", f"/v1/encoders/{encoder_id}")

    # -- jobs -------------------------------------------------------------------------------------
    def start_job(self, dataset_id: str, method: str, n_clusters: int | str, params: dict | None = None,
                  pretrain: dict | None = None, seed: int | None = None, *, name: str | None = None,
                  device: str | None = None, pretrained_from: str | None = None,
                  encoder: str | None = None, k_range: tuple[int, int] | None = None,
                  guard: str | None = None) -> "Job":
        """Start a clustering job; returns a ``Job`` to ``wait()`` on.

        ``n_clusters="auto"``: the job estimates K after pretraining, over ``k_range`` (default
        ``(2, 30)``). ``guard``: ``"restore"`` (default), ``"warn"`` or ``"off"``, what the job does
        when its clustering degenerates (empty clusters, one cluster over half of the data).

        ``params`` are the method's own (``methods()`` lists them); pretraining settings go in
        ``pretrain`` (e.g. ``{"epochs": 50, "batch_size": 256}``). ``encoder``: an encoder's id
        (``upload_encoder``) to embed an image dataset with first; the method runs on the embeddings.
        """
        body: dict[str, Any] = {"dataset_id": dataset_id, "method": method, "n_clusters": n_clusters,
                                "params": dict(params or {})}
        optional = {"pretrain": pretrain, "seed": seed, "name": name, "device": device,
                    "pretrained_from": pretrained_from, "encoder": encoder, "guard": guard,
                    "k_range": list(k_range) if k_range is not None else None}
        body.update({k: v for k, v in optional.items() if v is not None})
        return Job(self, self._json("POST", "/v1/jobs", json=body))

    def job(self, job_id: str) -> "Job":
        return Job(self, self._json("GET", f"/v1/jobs/{job_id}"))

    def jobs(self, status: str | None = None, dataset_id: str | None = None, limit: int = 50,
             offset: int = 0) -> list["Job"]:
        params = {k: v for k, v in {"status": status, "dataset_id": dataset_id, "limit": limit,
                                    "offset": offset}.items() if v is not None}
        return [Job(self, item) for item in self._json("GET", "/v1/jobs", params=params)["items"]]

    def list_jobs(self, *, method: str | None = None, dataset_id: str | None = None, sweep_id: str | None = None,
                  standalone: bool | None = None, status: str | None = None, limit: int | None = None,
                  as_frame: bool = False):
        """Your jobs, newest first, to compare runs: filtered by method, dataset, sweep (``sweep_id``:
        its jobs; ``standalone=True``: the jobs of no sweep) and status; ``limit`` (default: all).

        A list of ``Job``; with ``as_frame=True`` a pandas DataFrame (pandas must be installed),
        one row per job: id, name, method, n_clusters, seed, status, the metrics summary of a
        succeeded job (acc, nmi when the dataset has labels, silhouette, nonempty_clusters),
        dataset_id, model_id, created_at, finished_at."""
        query = {"method": method, "dataset_id": dataset_id, "sweep_id": sweep_id, "status": status,
                 "standalone": None if standalone is None else str(bool(standalone)).lower()}
        items = self._all("/v1/jobs", {k: v for k, v in query.items() if v is not None}, limit)
        if not as_frame:
            return [Job(self, item) for item in items]
        import pandas as pd  # only when a frame is asked for

        return pd.DataFrame([job_row(item) for item in items], columns=JOB_ROW_COLUMNS)

    def _all(self, path: str, params: dict, limit: int | None) -> list[dict]:
        """Every item of a paged list (or the first ``limit``), a page of up to 1,000 at a time."""
        items: list[dict] = []
        while limit is None or len(items) < limit:
            want = 1000 if limit is None else min(1000, limit - len(items))
            page = self._json("GET", path, params={**params, "limit": want, "offset": len(items)})
            items += page["items"]
            if not page["items"] or len(items) >= page["total"]:
                break
        return items

    # -- sweeps -----------------------------------------------------------------------------------
    def start_sweep(self, dataset_id: str, method: str, n_clusters: Any, *, seeds: list[int] | None = None,
                    n_restarts: int | None = None, params: dict | None = None, pretrain: dict | None = None,
                    selection: str | None = None, device: str | None = None, name: str | None = None) -> "Sweep":
        """Start a sweep: one job per (K, seed), then a label-free recommendation of K; returns a
        ``Sweep`` to ``wait()`` on.

        ``n_clusters``: a list or range of K's (``range(5, 16)``), ``{"min": 5, "max": 15, "step": 1}``
        or one K. ``seeds`` (default [0, 1, 2]) or ``n_restarts``; ``selection``: the criterion
        that picks K (the server's default when not given)."""
        if isinstance(n_clusters, range):
            n_clusters = list(n_clusters)
        body: dict[str, Any] = {"dataset_id": dataset_id, "method": method, "n_clusters": n_clusters,
                                "params": dict(params or {})}
        optional = {"seeds": None if seeds is None else list(seeds), "n_restarts": n_restarts,
                    "pretrain": pretrain, "selection": selection, "device": device, "name": name}
        body.update({k: v for k, v in optional.items() if v is not None})
        return Sweep(self, self._json("POST", "/v1/sweeps", json=body))

    def get_sweep(self, sweep_id: str) -> "Sweep":
        return Sweep(self, self._json("GET", f"/v1/sweeps/{sweep_id}"))

    def list_sweeps(self, dataset_id: str | None = None, limit: int | None = None) -> list["Sweep"]:
        """Your sweeps, newest first (``limit``: default all)."""
        params = {"dataset_id": dataset_id} if dataset_id else {}
        return [Sweep(self, item) for item in self._all("/v1/sweeps", params, limit)]

    # -- models -----------------------------------------------------------------------------------
    def models(self, limit: int = 50, offset: int = 0) -> list[dict]:
        return self._json("GET", "/v1/models", params={"limit": limit, "offset": offset})["items"]

    def model(self, model_id: str) -> dict:
        return self._json("GET", f"/v1/models/{model_id}")

    def delete_model(self, model_id: str) -> None:
        self.request("DELETE", f"/v1/models/{model_id}")

    def predict(self, model_id: str, X: Any, *, label_column: str | int | None = None) -> Prediction:
        """The cluster of each row of ``X`` (an array shaped like the training samples, or a path
        to a file in any dataset format, whose ``label_column`` is dropped): labels and probabilities."""
        out = self._predict(model_id, X, label_column, embeddings=False)
        return Prediction(np.asarray(out["labels"], dtype=np.int64), np.asarray(out["probabilities"]))

    def embed(self, model_id: str, X: Any, *, label_column: str | int | None = None) -> np.ndarray:
        """The latent vector of each row of ``X`` (the scaled input itself for k-means)."""
        return np.asarray(self._predict(model_id, X, label_column, embeddings=True)["embeddings"])

    def _predict(self, model_id: str, X: Any, label_column, embeddings: bool) -> dict:
        query = {"embeddings": "true"} if embeddings else {}
        if not isinstance(X, (str, os.PathLike)):
            X = np.asarray(X)
            if X.ndim == 1:  # one sample
                X = X[None, :]
        return self._upload(f"/v1/models/{model_id}/predict", {"file": X}, {"label_column": label_column},
                            params=query)

    # -- batch predictions ------------------------------------------------------------------------
    def start_prediction(self, model_id: str, dataset_id: str) -> "BatchPrediction":
        """Predict a whole stored dataset with a model, in the server's workers (any size, batch by
        batch); returns a ``BatchPrediction`` to ``wait()`` on. ``InvalidRequest``
        (``dataset_not_for_model``) when the dataset is not what the model takes."""
        return BatchPrediction(self, self._json("POST", "/v1/predictions",
                                                json={"model_id": model_id, "dataset_id": dataset_id}))

    def get_prediction(self, prediction_id: str) -> "BatchPrediction":
        return BatchPrediction(self, self._json("GET", f"/v1/predictions/{prediction_id}"))

    def list_predictions(self, *, model_id: str | None = None, dataset_id: str | None = None,
                         status: str | None = None, limit: int | None = None) -> list["BatchPrediction"]:
        """Your batch predictions, newest first, optionally of one model, dataset or status;
        ``limit`` (default: all)."""
        query = {"model_id": model_id, "dataset_id": dataset_id, "status": status}
        items = self._all("/v1/predictions", {k: v for k, v in query.items() if v is not None}, limit)
        return [BatchPrediction(self, item) for item in items]

    def download_model(self, model_id: str, path: str | os.PathLike, format: str = "zip") -> Path:
        """Save the model as a zip (``model.safetensors`` + ``manifest.json``, for
        ``DeepClusterer.load`` once unzipped) or, with ``format="onnx"``, as an ONNX file."""
        params = {"format": format} if format != "zip" else {}
        path = Path(path)
        with open(path, "wb") as out:
            out.write(self.request("GET", f"/v1/models/{model_id}/download", params=params).content)
        return path

    def import_model(self, path_or_bytes: str | os.PathLike | bytes) -> dict:
        """Import a model zip (as ``download_model`` writes it); returns the new model resource."""
        data = path_or_bytes
        if isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        opened: list[BinaryIO] = []
        try:
            name, content = _file_part(data, "model.zip", opened)
            return self._json("POST", "/v1/models", files={"file": (name, content, "application/zip")})
        finally:
            for handle in opened:
                handle.close()


# The formats upload_dataset takes, from the server's one input-format table (pure data, no server code).
Client.upload_dataset.__doc__ = Client.upload_dataset.__doc__.format(
    data_formats=formats.DATA_SUFFIXES, archive_formats=", ".join(formats.ARCHIVE_SUFFIXES),
    label_column_formats="/".join(formats.LABEL_COLUMN_FORMATS))


# -- what the server runs: jobs, sweeps, batch predictions ---------------------------------------------

class _Resource:
    """A resource the server runs, as last fetched (``resource``); ``refresh()`` fetches it again
    from ``_path``/{id}."""

    _path: str

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


# -- a job -------------------------------------------------------------------------------------------

class Job(_Resource):
    """One job on the server. ``resource`` is the job as last fetched; ``refresh()`` fetches it again."""

    _path = "/v1/jobs"

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
        interrupted = threading.Event()
        states = _polled(self, "job", timeout, poll_seconds, interrupted)
        if progress:
            from deepclust.app.client.progress import follow, warning_lines  # rich, only when a bar is wanted

            with _ctrl_c_between_polls(interrupted):
                follow(states, console=console)
            if console is None:  # the CLI passes its console and prints them in its own summary
                from rich.console import Console

                for line in warning_lines(self.resource):  # never shown as a plain success with these
                    Console(stderr=True).print(f"[yellow]warning[/] {line}", highlight=False)
        else:
            for _ in states:
                pass
        if raise_on_failure and self.status != "succeeded":
            error = self.resource.get("error") or {"code": "job_cancelled", "message": f"job {self.id} was cancelled"}
            raise JobFailed(409, error["code"], error["message"], {"job": self.resource})
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

    def wait(self, progress: bool = True, *, timeout: float | None = None, poll_seconds: float = 2.0,
             raise_on_failure: bool = False, console: Any = None) -> dict:
        """Block until every job of the sweep has ended and it has settled; returns the final sweep.

        ``progress`` shows one bar over its jobs (done/total, running, failed, ETA). ``timeout``
        raises ``TimeoutError`` (the sweep keeps running). ``raise_on_failure`` raises ``JobFailed``
        carrying the sweep's error when it failed or was cancelled."""
        interrupted = threading.Event()
        states = _polled(self, "sweep", timeout, poll_seconds, interrupted)
        if progress:
            from deepclust.app.client.progress import follow_sweep  # rich, only when a bar is wanted

            with _ctrl_c_between_polls(interrupted):
                follow_sweep(states, console=console)
        else:
            for _ in states:
                pass
        if raise_on_failure and self.status != "succeeded":
            error = self.resource.get("error") or {"code": "sweep_cancelled",
                                                   "message": f"sweep {self.id} was cancelled"}
            raise JobFailed(409, error["code"], error["message"], {"sweep": self.resource})
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

    def wait(self, progress: bool = True, *, timeout: float | None = None, poll_seconds: float = 1.0,
             raise_on_failure: bool = False, console: Any = None) -> dict:
        """Block until the prediction has ended; returns its final resource. ``progress`` shows a bar
        (samples predicted, ETA); ``timeout`` raises ``TimeoutError`` (it keeps running);
        ``raise_on_failure`` raises ``JobFailed`` with its error when it failed or was cancelled."""
        interrupted = threading.Event()
        states = _polled(self, "prediction", timeout, poll_seconds, interrupted)
        if progress:
            from deepclust.app.client.progress import follow_prediction  # rich, only when a bar is wanted

            with _ctrl_c_between_polls(interrupted):
                follow_prediction(states, console=console)
        else:
            for _ in states:
                pass
        if raise_on_failure and self.status != "succeeded":
            error = self.resource.get("error") or {"code": "prediction_cancelled",
                                                   "message": f"prediction {self.id} was cancelled"}
            raise JobFailed(409, error["code"], error["message"], {"prediction": self.resource})
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
