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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import numpy as np

from deepclust.app.datasets.ingest import formats

from .errors import (BadRequest, Conflict, ConnectionFailed, DeepclustError, InvalidRequest, JobFailed, NotFound,
                     ServerError, ServiceUnavailable, TooLarge, Unauthorized, UnsupportedMediaType,
                     error_from_response)
from .resources import JOB_ROW_COLUMNS, BatchPrediction, Job, Prediction, Sweep, job_row

DEFAULT_URL = "http://127.0.0.1:8000"

__all__ = ["Client", "Job", "Sweep", "Prediction", "BatchPrediction", "DeepclustError", "BadRequest", "Unauthorized", "NotFound", "Conflict",
           "TooLarge", "UnsupportedMediaType", "InvalidRequest", "ServiceUnavailable", "ServerError",
           "ConnectionFailed", "JobFailed"]


# -- what goes up: arrays, paths and bytes as multipart parts ----------------------------------------

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


