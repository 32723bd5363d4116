"""`run_prediction(prediction_id)`: a batch prediction (POST /v1/predictions), whoever dispatched it.

Claim (guarded, like a job: a second delivery is a no-op), rebuild the model from its inference
weights (and the encoder a model on pretrained features runs first), then predict the dataset's
memory-mapped rows ``predict_batch_size`` at a time, so memory stays bounded whatever its size.
The same forward pass as POST /v1/models/{id}/predict (``DeepClusterer.predict_proba``; the
encoder through ``EncoderRunner``), so the labels are the synchronous predict's.

Rows predicted so far are stored as parts (``storage.prediction_part_key``) every
``checkpoint_interval_seconds``: an attempt that dies (worker killed, reaped, requeued) is resumed
by the next one after the last part, and the parts become ``labels.npy`` and ``probabilities.npy``
once every row is done. Cancel and the runtime limit (``max_prediction_runtime_seconds``) are
read between batches; a cancelled or failed prediction leaves no file behind. Failures are
classed as a job's are (worker/failures.py): the infrastructure's (database unreachable) requeue
the prediction with a backoff, the prediction's own fail it.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

import numpy as np

from deepclust.app.core import joblog, predictionstate, results
from deepclust.app.core.db import engine_for, new_session, utcnow
from deepclust.app.core.encoding import EncoderRunner, EncoderSpec
from deepclust.app.core.jobstate import retry_delay, worker_name
from deepclust.app.core.npyfile import open_array
from deepclust.app.core.settings import Settings, get_settings
from deepclust.app.core.storage import prediction_key, prediction_part_key, prediction_prefix, store_for
from deepclust.app.core.tables import CANCELLED, FAILED, QUEUED, SUCCEEDED, Dataset, Prediction, TrainedModel
from deepclust.models import DeepClusterer
from deepclust.worker.failures import is_infrastructure, job_error

log = logging.getLogger(__name__)
LABELS, PROBABILITIES = "labels.npy", "probabilities.npy"
# A part is written at the latest after this many rows, however long the checkpoint interval.
MAX_PART_ROWS = 1 << 20


class Cancelled(Exception):
    pass


class Lost(Exception):
    """The row no longer carries our attempt (reaped and claimed again): stop, write nothing."""


class RuntimeExceeded(Exception):
    """The attempt ran past ``max_prediction_runtime_seconds``: the prediction fails."""

    def __init__(self, limit: float, elapsed: float, done: int, total: int):
        super().__init__(f"Stopped after {elapsed:.1f} s, at row {done:,} of {total:,}: past the runtime limit of "
                         f"{limit:g} s for one attempt of a batch prediction (the server's "
                         "DEEPCLUST_MAX_PREDICTION_RUNTIME_SECONDS). Predict a smaller dataset, or ask the "
                         "operator to raise the limit.")


def run_prediction(prediction_id: str, settings: Settings | None = None, attempt: int | None = None) -> str | None:
    """Run the prediction if it can be claimed; its final status (``queued`` when it went back to the
    queue), or None if it was not ours (already taken, finished or cancelled, or lost on the way).
    ``attempt``: claimed for us already (by the local runner) as this attempt."""
    settings = settings or get_settings()
    engine = engine_for(settings.database_url, connect_timeout=settings.db_connect_timeout_seconds)
    store = store_for(settings.data_dir)
    with new_session(engine) as session:
        if attempt is None:
            row = predictionstate.claim(session, prediction_id, worker_name())
        else:
            row = predictionstate.adopt(session, prediction_id, attempt, worker_name())
        if row is None:
            log.info("prediction %s is not queued (already taken, finished or cancelled); nothing to do",
                     prediction_id)
            return None
        session.expunge(row)
    with joblog.capture(store, prediction_id):
        status, values = _attempt(row, settings, engine, store)
        return _record(row, status, values, settings, engine, store)


def _attempt(row: Prediction, settings: Settings, engine, store) -> tuple[str, dict]:
    """Predict every row and publish the arrays: ``(status, values)`` with status SUCCEEDED (the
    arrays published, the row finished), CANCELLED, FAILED (``values["error"]``), "retry"
    (``values["reason"]``) or "lost"."""
    lost = threading.Event()
    try:
        with _heartbeat(engine, row, settings, lost):
            model, runner, X = _load(row, settings, engine, store)
            log.info("prediction %s: attempt %d: model %s on dataset %s (%d samples of shape %s), %d per batch",
                     row.id, row.attempts, row.model_id, row.dataset_id, len(X), list(X.shape[1:]),
                     settings.predict_batch_size)
            _predict_parts(row, model, runner, X, settings, engine, store, lost)
            _assemble(row, len(X), store)
            if not _write(engine, lambda s: predictionstate.finish(
                    s, row.id, row.attempts, SUCCEEDED, progress={"done": len(X), "total": len(X), "fraction": 1.0})):
                raise Lost()
            return SUCCEEDED, {}
    except Cancelled:
        return CANCELLED, {}
    except RuntimeExceeded as exc:
        return FAILED, {"error": {"code": "runtime_exceeded", "message": str(exc)}}
    except Lost:
        return "lost", {}
    except Exception as exc:
        if is_infrastructure(exc):
            log.warning("prediction %s attempt %d: the infrastructure failed (%s: %s)", row.id, row.attempts,
                        type(exc).__name__, exc)
            return "retry", {"reason": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        log.exception("prediction %s failed", row.id)
        return FAILED, {"error": job_error(exc, None)}


def _record(row: Prediction, status: str, values: dict, settings: Settings, engine, store) -> str | None:
    """Write what the attempt came to; its parts are removed unless the prediction goes on."""
    if status == "lost":
        log.warning("prediction %s attempt %d lost its claim; leaving it to its new owner", row.id, row.attempts)
        return None
    if status == "retry":
        delay = retry_delay(row.attempts, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds)
        try:
            outcome = _write(engine, lambda s: predictionstate.requeue_or_fail(
                s, row.id, row.attempts, f"the infrastructure failed ({values['reason']})", settings.max_attempts,
                retry_in=delay, code="infrastructure_failed"))
        except Exception as exc:
            if not is_infrastructure(exc):
                raise
            log.error("prediction %s: the database stayed unreachable; the reaper will requeue it", row.id)
            return None
        if outcome is None:  # no longer ours: the reaper or a new owner has it
            return None
        if outcome == QUEUED:
            log.warning("prediction %s: attempt %d ended by the infrastructure; it goes back to the queue in %.0f s "
                        "and resumes after the rows already stored", row.id, row.attempts, delay)
            return QUEUED
        status = outcome
    elif status != SUCCEEDED:
        if not _write(engine, lambda s: predictionstate.finish(s, row.id, row.attempts, status, **values)):
            log.warning("prediction %s attempt %d lost its claim; leaving it to its new owner", row.id, row.attempts)
            return None
    if status == SUCCEEDED:
        store.delete_prefix(f"{prediction_prefix(row.id)}/parts")
    else:
        store.delete_prefix(prediction_prefix(row.id))
    if status == FAILED and "error" in values:
        log.error("prediction %s failed: %s: %s", row.id, values["error"]["code"], values["error"]["message"])
    log.info("prediction %s %s", row.id, status)
    return status


def _write(engine, action):
    with new_session(engine) as session:
        return action(session)


def _load(row: Prediction, settings: Settings, engine, store):
    """The model (and the encoder it runs first), and the dataset's rows memory-mapped."""
    with new_session(engine) as session:
        dataset = session.get(Dataset, row.dataset_id)
        encoder = None
        model_row = session.get(TrainedModel, row.model_id)
        stored = results.inference_weights(session, row.model_id) if model_row is not None else None
        if model_row is not None and model_row.encoder is not None:
            encoder = (EncoderSpec.from_dict(model_row.encoder), results.encoder_onnx(session, row.model_id))
    if dataset is None or not store.exists(dataset.data_key):
        raise LookupError(f"dataset {row.dataset_id} no longer exists")
    if stored is None or (encoder is not None and encoder[1] is None):
        raise LookupError(f"model {row.model_id} no longer exists")
    model = DeepClusterer.from_bytes(*stored, device=settings.device)
    runner = EncoderRunner(encoder[0], encoder[1], settings.device) if encoder is not None else None
    return model, runner, open_array(store.local_path(dataset.data_key))


def _resume_point(row: Prediction, store) -> int:
    """The rows the parts stored so far cover, contiguously from the first."""
    done = 0
    while store.exists(key := prediction_part_key(row.id, done)):
        rows = len(np.load(store.local_path(key), mmap_mode="r", allow_pickle=False))
        if rows == 0:
            break
        done += rows
    return done


def _predict_parts(row: Prediction, model, runner: EncoderRunner | None, X: np.ndarray, settings: Settings,
                   engine, store, lost: threading.Event) -> None:
    n, batch = len(X), settings.predict_batch_size
    start = _resume_point(row, store)
    if start:
        log.info("prediction %s: resuming after the %d of %d rows already predicted", row.id, start, n)
    pending: list[np.ndarray] = []
    part_start = start
    began = flushed = asked = time.monotonic()
    limit = settings.max_prediction_runtime_seconds
    for begin in range(start, n, batch):
        if lost.is_set():
            raise Lost()
        rows = np.asarray(X[begin:begin + batch], dtype=np.float32)
        if runner is not None:
            rows = runner.run(rows)
        pending.append(np.asarray(model.predict_proba(rows), dtype=np.float32))
        done = min(begin + batch, n)
        now = time.monotonic()
        if done == n or now - flushed >= settings.checkpoint_interval_seconds or done - part_start >= MAX_PART_ROWS:
            _store_part(row.id, part_start, np.concatenate(pending), store)
            pending, part_start, flushed = [], done, now
        if done == n or now - asked >= settings.progress_interval_seconds:
            progress = {"done": done, "total": n, "fraction": round(done / n, 6)}
            if not _write(engine, lambda s: predictionstate.update_owned(s, row.id, row.attempts, progress=progress)):
                raise Lost()
            if _write(engine, lambda s: predictionstate.cancel_requested(s, row.id)):
                raise Cancelled()
            asked = time.monotonic()
        if limit is not None and done < n and (elapsed := time.monotonic() - began) > limit:
            raise RuntimeExceeded(limit, elapsed, done, n)


def _store_part(prediction_id: str, start: int, proba: np.ndarray, store) -> None:
    """Rows ``start..start+len(proba)``: labels and probabilities as one structured .npy, published atomically."""
    table = np.empty(len(proba), dtype=[("labels", "<i8"), ("probabilities", "<f4", proba.shape[1:])])
    table["labels"] = proba.argmax(1)
    table["probabilities"] = proba
    with store.staging_file(".npy") as tmp:
        np.save(tmp, table, allow_pickle=False)
        store.publish(tmp, prediction_part_key(prediction_id, start))


def _assemble(row: Prediction, n: int, store) -> None:
    """The parts, in order, as ``labels.npy`` (int64) and ``probabilities.npy`` (float32, N×K),
    written through memory maps (bounded memory) and published."""
    with store.staging_file(".npy") as labels_tmp, store.staging_file(".npy") as proba_tmp:
        labels = proba = None
        done = 0
        while done < n:
            part = np.load(store.local_path(prediction_part_key(row.id, done)), mmap_mode="r", allow_pickle=False)
            if labels is None:
                labels = np.lib.format.open_memmap(labels_tmp, mode="w+", dtype="<i8", shape=(n,))
                proba = np.lib.format.open_memmap(proba_tmp, mode="w+", dtype="<f4",
                                                  shape=(n, *part["probabilities"].shape[1:]))
            labels[done:done + len(part)] = part["labels"]
            proba[done:done + len(part)] = part["probabilities"]
            done += len(part)
        if labels is None:  # an empty dataset cannot be uploaded; nothing to assemble
            raise ValueError(f"dataset {row.dataset_id} has no rows")
        labels.flush()
        proba.flush()
        del labels, proba
        store.publish(labels_tmp, prediction_key(row.id, LABELS))
        store.publish(proba_tmp, prediction_key(row.id, PROBABILITIES))


@contextmanager
def _heartbeat(engine, row: Prediction, settings: Settings, lost: threading.Event):
    """Keep heartbeat_at fresh from a thread (a large batch through an encoder can take a while);
    ``lost`` is set once the row no longer carries our attempt."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(settings.heartbeat_seconds):
            try:
                if not _write(engine, lambda s: predictionstate.update_owned(s, row.id, row.attempts,
                                                                               heartbeat_at=utcnow())):
                    lost.set()
                    return
            except Exception:  # a database blip: the next beat may get through
                log.warning("heartbeat of prediction %s failed", row.id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{row.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
