"""The result tables of a succeeded job (model and its weights, centroids, metrics, assignments):
the one module that writes them (the worker, in the job's final transaction) and reads them (the API)."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors
from sqlalchemy import insert
from sqlalchemy.orm import defer
from sqlmodel import Session, func, select

from deepclust.app.core.pagination import paginate
from deepclust.app.core.tables import (
    ENCODER,
    INFERENCE,
    PRETRAINED,
    Assignment,
    Centroids,
    Job,
    Metrics,
    ModelWeights,
    TrainedModel,
)

# The library names the pretrained autoencoder's tensors "pretrained.*" (models/persistence.py);
# every other tensor is needed to predict.
_PRETRAINED_PREFIX = "pretrained."


def add(session: Session, job: Job, model_id: str, *, sample_shape, weights: bytes, manifest: dict,
        centers_space: str, centers: np.ndarray, report: dict, labels: np.ndarray,
        confidences: np.ndarray, encoder: dict | None = None, encoder_onnx: bytes | None = None) -> None:
    """Stage every result row of ``job`` in ``session``; the caller commits them with the job's status.

    ``weights`` are the library's safetensors bytes; they are stored as two parts, so predict
    loads only what it uses and the pretrained autoencoder waits for a job that reuses it.
    """
    add_model(session, TrainedModel(id=model_id, tenant_id=job.tenant_id, job_id=job.id, dataset_id=job.dataset_id,
                                    method=job.method, params=job.params, n_clusters=job.n_clusters,
                                    sample_shape=[int(s) for s in sample_shape], manifest=manifest,
                                    encoder=encoder), weights, encoder_onnx)
    session.add(Centroids(job_id=job.id, space=centers_space, dim=int(centers.shape[1]), values=centers.tolist()))
    session.add(Metrics(job_id=job.id, **report))
    session.execute(insert(Assignment), [
        {"job_id": job.id, "index": i, "label": int(label), "confidence": float(conf)}
        for i, (label, conf) in enumerate(zip(labels, confidences))])


def add_model(session: Session, row: TrainedModel, weights: bytes, encoder_onnx: bytes | None = None) -> None:
    """Stage a model row and its weights (a job's, or one imported from a bundle); a model on an
    encoder's embeddings also keeps the encoder's ONNX bytes (part ``encoder``)."""
    session.add(row)
    session.flush()  # the weights rows reference the model row
    parts = _split(weights)
    if encoder_onnx is not None:
        parts[ENCODER] = encoder_onnx
    for part, data in parts.items():
        session.add(ModelWeights(model_id=row.id, part=part, sha256=hashlib.sha256(data).hexdigest(),
                                 size_bytes=len(data), data=data))


# -- reads ------------------------------------------------------------------------------------

def labels_page(session: Session, job_id: str, offset: int, limit: int) -> tuple[list[Assignment], int]:
    rows = session.exec(select(Assignment).where(Assignment.job_id == job_id, Assignment.index >= offset)
                        .order_by(Assignment.index).limit(limit)).all()
    return list(rows), n_assignments(session, job_id)


def n_assignments(session: Session, job_id: str) -> int:
    return session.exec(select(func.count()).select_from(Assignment).where(Assignment.job_id == job_id)).one()


def labels_csv(session: Session, job_id: str) -> str:
    rows = session.exec(select(Assignment).where(Assignment.job_id == job_id).order_by(Assignment.index)).all()
    return "index,label,confidence\n" + "".join(f"{r.index},{r.label},{r.confidence:.6g}\n" for r in rows)


def labels_npy(session: Session, job_id: str) -> bytes:
    labels = session.exec(select(Assignment.label).where(Assignment.job_id == job_id)
                          .order_by(Assignment.index)).all()
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(labels, dtype=np.int64))
    return buffer.getvalue()


def centroids(session: Session, job_id: str) -> Centroids | None:
    return session.get(Centroids, job_id)


def metrics(session: Session, job_id: str) -> Metrics | None:
    return session.get(Metrics, job_id)


def metrics_of(session: Session, job_ids: list[str]) -> dict[str, Metrics]:
    """The metrics rows of several jobs at once (a page of the jobs list), by job id."""
    return {row.job_id: row for row in session.exec(select(Metrics).where(Metrics.job_id.in_(job_ids)))}


def list_models(session: Session, tenant: str, limit: int, offset: int) -> tuple[list[TrainedModel], int]:
    """A page of the tenant's models, newest first, without their manifests."""
    return paginate(session, TrainedModel, TrainedModel.tenant_id == tenant, limit=limit, offset=offset,
                    options=(defer(TrainedModel.manifest),))


# -- models and their weights -------------------------------------------------------------------

@dataclass(frozen=True)
class ModelCard:
    """What predict checks on every request: a few small columns, never the weights or manifest."""

    id: str
    sample_shape: list[int]
    encoder: dict | None = None  # a model on an encoder's embeddings: its EncoderSpec (images in)


def model_card(session: Session, model_id: str, tenant: str) -> ModelCard | None:
    """The model if it exists and belongs to ``tenant``, else None (the caller answers 404)."""
    row = session.exec(select(TrainedModel.sample_shape, TrainedModel.encoder).where(
        TrainedModel.id == model_id, TrainedModel.tenant_id == tenant)).first()
    return None if row is None else ModelCard(model_id, list(row[0]), row[1])


def encoder_onnx(session: Session, model_id: str) -> bytes | None:
    """The ONNX bytes of the encoder a model runs first, or None."""
    return session.exec(select(ModelWeights.data).where(ModelWeights.model_id == model_id,
                                                        ModelWeights.part == ENCODER)).first()


def model_row(session: Session, model_id: str, tenant: str) -> TrainedModel | None:
    """The model row without its manifest (which carries the training history), or None."""
    row = session.get(TrainedModel, model_id, options=[defer(TrainedModel.manifest)])
    return row if row is not None and row.tenant_id == tenant else None


def inference_weights(session: Session, model_id: str) -> tuple[bytes, dict] | None:
    """Safetensors bytes and manifest enough to predict (no pretrained autoencoder); None if gone."""
    return _weights(session, model_id, (INFERENCE,))


def model_bytes(session: Session, model_id: str) -> tuple[bytes, dict] | None:
    """The whole model as the library wrote it (``DeepClusterer.from_bytes``), pretrained part
    included; None if the model is gone."""
    return _weights(session, model_id, (INFERENCE, PRETRAINED))


def _weights(session: Session, model_id: str, parts: tuple[str, ...]) -> tuple[bytes, dict] | None:
    manifest = session.exec(select(TrainedModel.manifest).where(TrainedModel.id == model_id)).first()
    if manifest is None:
        return None
    blobs = session.exec(select(ModelWeights.data).where(ModelWeights.model_id == model_id,
                                                         ModelWeights.part.in_(parts))
                         .order_by(ModelWeights.part)).all()
    return (blobs[0] if len(blobs) == 1 else _merge(blobs)), manifest


def _split(weights: bytes) -> dict[str, bytes]:
    tensors = load_tensors(weights)
    pretrained = {k: v for k, v in tensors.items() if k.startswith(_PRETRAINED_PREFIX)}
    if not pretrained:
        return {INFERENCE: weights}
    inference = {k: v for k, v in tensors.items() if not k.startswith(_PRETRAINED_PREFIX)}
    return {INFERENCE: save_tensors(inference), PRETRAINED: save_tensors(pretrained)}


def _merge(blobs: list[bytes]) -> bytes:
    tensors: dict[str, np.ndarray] = {}
    for blob in blobs:
        tensors.update(load_tensors(blob))
    return save_tensors(tensors)
