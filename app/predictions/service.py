"""Batch predictions: creation (the dataset checked against the model before anything is queued),
listing, cancel, delete, the labels of a succeeded one, and the reaper's round for them.

A prediction runs in the workers like a job (worker/predict.py) and its state machine is the job's
(app/core/predictionstate.py); its results are two arrays in the artifact store, not rows, so a
dataset of any size costs the database one row.
"""
from __future__ import annotations

import io
import logging
from datetime import timedelta

import numpy as np
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from deepclust.app.core import joblog, predictionstate, results
from deepclust.app.core.db import new_session, utcnow
from deepclust.app.core.dispatch import BrokerUnavailable, Dispatcher, send_or_undo
from deepclust.app.core.encoding import EncoderSpec
from deepclust.app.core.ids import new_id
from deepclust.app.core.pagination import paginate
from deepclust.app.core.settings import Settings
from deepclust.app.core.storage import ArtifactStore, log_key, prediction_key, prediction_prefix, store_for
from deepclust.app.core.tables import ACTIVE_STATES, CANCELLED, SUCCEEDED, Dataset, Prediction, TrainedModel
from deepclust.app.errors import (
    BROKER_UNAVAILABLE,
    DATASET_NOT_FOR_MODEL,
    PREDICTION_ACTIVE,
    PREDICTION_FINISHED,
    PREDICTION_NOT_SUCCEEDED,
    not_found,
)
from deepclust.app.http.paging import Page
from deepclust.app.jobs.schemas import LabelItem
from deepclust.app.jobs.service import LabelsFile
from deepclust.app.predictions.schemas import PredictionCreate, PredictionLabelItem, PredictionLabelsPage, PredictionOut
from deepclust.app.tenancy.ownership import owned
from deepclust.app.trained_models.predict import to_npy

log = logging.getLogger(__name__)
LABELS, PROBABILITIES = "labels.npy", "probabilities.npy"  # the worker's names (worker/predict.py)


def create(session: Session, dispatcher: Dispatcher, tenant: str, body: PredictionCreate) -> Prediction:
    """Queue a prediction of ``body.dataset_id`` by ``body.model_id`` once the dataset is known to fit
    the model; 503 (and nothing kept) when the broker does not take it."""
    card = results.model_card(session, body.model_id, tenant)
    if card is None:
        raise not_found("model", body.model_id)
    dataset = owned(session, Dataset, body.dataset_id, tenant)
    check_fits(card, dataset)
    n_clusters = session.exec(select(TrainedModel.n_clusters).where(TrainedModel.id == card.id)).one()
    row = Prediction(id=new_id("prd"), tenant_id=tenant, model_id=card.id, dataset_id=dataset.id,
                     n_samples=dataset.n_samples, n_clusters=n_clusters)
    session.add(row)
    session.commit()
    try:
        send_or_undo(session, [row], lambda: dispatcher.submit_prediction(row.id))
    except BrokerUnavailable as exc:
        raise BROKER_UNAVAILABLE(reason=str(exc)) from None
    return row


def check_fits(card: results.ModelCard, dataset: Dataset) -> None:
    """422 ``dataset_not_for_model`` unless every sample of the dataset is what the model takes:
    images shaped like those its encoder was fed (a model on an encoder's embeddings), images of its
    training shape (an image model), or features of its width (a feature model)."""
    shape = [int(s) for s in dataset.sample_shape]
    facts = {"model_id": card.id, "dataset_id": dataset.id, "dataset_kind": dataset.kind, "dataset_shape": shape}
    if card.encoder is not None:
        wanted, kind = list(EncoderSpec.from_dict(card.encoder).image_shape), "images"
        takes = f"images of shape {wanted} (it embeds them with encoder {card.encoder.get('id')} first)"
    else:
        wanted = [int(s) for s in card.sample_shape]
        kind = "images" if len(wanted) == 3 else "features"
        takes = f"images of shape {wanted}" if kind == "images" else f"feature vectors of width {wanted[0]}"
    if dataset.kind == kind and shape == wanted:
        return
    holds = f"images of shape {shape}" if dataset.kind == "images" else f"feature vectors of width {shape[0]}"
    raise DATASET_NOT_FOR_MODEL(f"Model {card.id} takes {takes}; dataset {dataset.id} holds {holds}. Upload the data "
                                "shaped like the model's training data (GET /v1/models/{id} has its sample_shape).",
                                facts, expected_kind=kind, expected_shape=wanted)


def page(session: Session, tenant: str, model_id: str | None, dataset_id: str | None, status: str | None,
         limit: int, offset: int) -> Page[PredictionOut]:
    where = [Prediction.tenant_id == tenant]
    if model_id is not None:
        where.append(Prediction.model_id == model_id)
    if dataset_id is not None:
        where.append(Prediction.dataset_id == dataset_id)
    if status is not None:
        where.append(Prediction.status == status)
    rows, total = paginate(session, Prediction, *where, limit=limit, offset=offset)
    return Page(items=[PredictionOut.of(r) for r in rows], total=total)


def get(session: Session, tenant: str, prediction_id: str) -> PredictionOut:
    return PredictionOut.of(owned(session, Prediction, prediction_id, tenant))


def cancel(session: Session, store: ArtifactStore, tenant: str, prediction_id: str) -> PredictionOut:
    """A queued prediction is cancelled at once, a running one stops within a batch; 409 once finished."""
    row = owned(session, Prediction, prediction_id, tenant)
    outcome = predictionstate.request_cancel(session, prediction_id)
    session.refresh(row)
    if outcome is None:
        raise PREDICTION_FINISHED(f"Prediction {prediction_id} has already {row.status}; there is nothing to "
                                  "cancel.", {"status": row.status})
    if outcome == CANCELLED:  # a requeued one may have stored parts
        store.delete_prefix(prediction_prefix(prediction_id))
    return PredictionOut.of(row)


def remove(session: Session, store: ArtifactStore, tenant: str, prediction_id: str) -> None:
    """Delete a finished prediction with its files and log (409 while queued or running), by a
    guarded statement: one a worker claims at the same moment stays."""
    row = owned(session, Prediction, prediction_id, tenant)
    gone = session.execute(delete(Prediction).where(Prediction.id == prediction_id,
                                                    Prediction.status.not_in(ACTIVE_STATES))).rowcount == 1
    session.commit()
    if not gone:
        session.refresh(row)
        raise PREDICTION_ACTIVE(f"Prediction {prediction_id} is {row.status}; cancel it first (POST "
                                f"/v1/predictions/{prediction_id}/cancel) and delete it once it has stopped.",
                                {"id": prediction_id, "status": row.status})
    remove_files(store, prediction_id)


def remove_files(store: ArtifactStore, prediction_id: str) -> None:
    store.delete_prefix(prediction_prefix(prediction_id))
    store.delete_prefix(log_key(prediction_id))


# -- what deleting a dataset or a model does to the predictions of it (app/lifecycle.py) ----------

def active_of(session: Session, *, dataset_id: str | None = None, model_id: str | None = None) -> list[str]:
    """The queued or running predictions of a dataset or a model: deleting either waits for them."""
    column, value = (Prediction.dataset_id, dataset_id) if dataset_id is not None else (Prediction.model_id, model_id)
    return list(session.exec(select(Prediction.id).where(column == value, Prediction.status.in_(ACTIVE_STATES))).all())


def remove_finished_of_dataset(session: Session, dataset_id: str) -> list[str]:
    """Delete the finished predictions of a dataset in the caller's transaction (like its finished
    jobs); returns their ids, whose files go once it has committed (``remove_files``)."""
    ids = list(session.exec(select(Prediction.id).where(Prediction.dataset_id == dataset_id,
                                                        Prediction.status.not_in(ACTIVE_STATES))).all())
    if ids:
        session.execute(delete(Prediction).where(Prediction.id.in_(ids), Prediction.status.not_in(ACTIVE_STATES)))
    return ids


# -- results of a succeeded prediction ------------------------------------------------------------------

def arrays(session: Session, store: ArtifactStore, tenant: str, prediction_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Its labels and probabilities, memory-mapped; 409 until it has succeeded."""
    row = owned(session, Prediction, prediction_id, tenant)
    if row.status != SUCCEEDED:
        raise PREDICTION_NOT_SUCCEEDED(f"Prediction {prediction_id} is {row.status}; its labels exist once it has "
                                       "succeeded.", {"status": row.status})
    return (np.load(store.local_path(prediction_key(row.id, LABELS)), mmap_mode="r", allow_pickle=False),
            np.load(store.local_path(prediction_key(row.id, PROBABILITIES)), mmap_mode="r", allow_pickle=False))


def labels(session: Session, store: ArtifactStore, tenant: str, prediction_id: str, format: str, offset: int,
           limit: int, probabilities: bool) -> PredictionLabelsPage | LabelsFile:
    """What a job's labels route answers (a page of JSON, or all as csv or npy), with each sample's
    probabilities when asked: one more field per item, K more csv columns, or an npy of the
    fields ``labels`` and ``probabilities`` (as predict's ``application/x-npy``)."""
    y, proba = arrays(session, store, tenant, prediction_id)
    if format == "npy":
        if probabilities:
            content = to_npy({"labels": np.asarray(y), "probabilities": np.asarray(proba)})
        else:  # the label vector, as a job's
            content = _plain_npy(np.asarray(y, dtype=np.int64))
        return LabelsFile(content, "application/octet-stream", f"{prediction_id}-labels.npy")
    if format == "csv":
        header = "index,label,confidence" + "".join(f",p{k}" for k in range(proba.shape[1]) if probabilities)
        lines = [header + "\n"]
        for start in range(0, len(y), 65536):  # a block at a time from the memory maps
            block_y, block_p = np.asarray(y[start:start + 65536]), np.asarray(proba[start:start + 65536])
            for i, (label, p) in enumerate(zip(block_y, block_p), start):
                extra = "".join(f",{float(v):.6g}" for v in p) if probabilities else ""
                lines.append(f"{i},{label},{float(p.max()):.6g}{extra}\n")
        return LabelsFile("".join(lines).encode(), "text/csv", f"{prediction_id}-labels.csv")
    block_y, block_p = np.asarray(y[offset:offset + limit]), np.asarray(proba[offset:offset + limit])
    items = [PredictionLabelItem(**LabelItem(index=offset + i, label=int(label), confidence=float(p.max())).model_dump(),
                                 probabilities=[float(v) for v in p] if probabilities else None)
             for i, (label, p) in enumerate(zip(block_y, block_p))]
    return PredictionLabelsPage(total=len(y), offset=offset, items=items)


def _plain_npy(vector: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, vector, allow_pickle=False)
    return buffer.getvalue()


def purge_expired(engine: Engine, store: ArtifactStore, retention_days: float, batch: int = 1000) -> list[str]:
    """Retention (app/retention.py): delete up to ``batch`` predictions that finished more than
    ``retention_days`` ago, with their files; returns their ids."""
    cutoff = utcnow() - timedelta(days=retention_days)
    removed = []
    with new_session(engine) as session:
        expired = session.exec(select(Prediction.id).where(Prediction.status.not_in(ACTIVE_STATES),
                                                           Prediction.finished_at < cutoff)
                               .order_by(Prediction.finished_at).limit(batch)).all()
        for prediction_id in expired:
            if session.execute(delete(Prediction).where(Prediction.id == prediction_id,
                                                        Prediction.status.not_in(ACTIVE_STATES))).rowcount == 1:
                session.commit()
                remove_files(store, prediction_id)
                removed.append(prediction_id)
    if removed:
        log.info("retention: removed %d predictions finished more than %g days ago", len(removed), retention_days)
    return removed


# -- the reaper's round (a thread of the API process, app/jobs/reaper.py) -----------------------------

def reap_once(engine: Engine, settings: Settings, dispatcher: Dispatcher) -> list[str]:
    """Requeue the predictions whose heartbeat went stale (their next attempt resumes after the rows
    stored; one being cancelled is cancelled) and send every requeued one the broker has not taken
    yet; returns the ids requeued."""
    with new_session(engine) as session:
        requeued, cancelled = predictionstate.reap_stale(
            session, settings.stale_after_seconds, settings.max_attempts,
            (settings.retry_backoff_seconds, settings.retry_backoff_max_seconds))
        store = store_for(settings.data_dir)
        for prediction_id in cancelled:  # its worker died while it was being cancelled
            store.delete_prefix(prediction_prefix(prediction_id))
            joblog.append(store, prediction_id, "no heartbeat while it was being cancelled; it is cancelled", "INFO")
        for prediction_id in requeued:
            log.warning("prediction %s lost its worker (stale heartbeat); requeued", prediction_id)
            joblog.append(store, prediction_id, f"no heartbeat for {settings.stale_after_seconds:.0f} s (the worker "
                          "was lost); it goes back to the queue and resumes after the rows already predicted",
                          "WARNING")
        for prediction_id in predictionstate.pending_dispatch(session):
            try:
                dispatcher.submit_prediction(prediction_id)
            except BrokerUnavailable as exc:
                log.warning("prediction %s stays queued until the broker answers: %s", prediction_id, exc)
                break
            predictionstate.mark_dispatched(session, prediction_id)
    return requeued
