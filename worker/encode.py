"""The `encode` phase of a job on a pretrained encoder: every image of the dataset through the encoder
(preprocessing included, app/core/encoding.py), in batches, with onnxruntime on the job's device
(the CUDA provider when asked for or auto and present, else the CPU).

Progress is the batches done (``epoch``/``epochs`` of the phase); cancel and the runtime limit are
read between batches, like at any epoch boundary. The embeddings (N×D float32 ``.npy``) are kept
in the artifact store per (dataset, encoder) and reused by every later job on the pair, and by a
retried attempt of this one.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from deepclust.app.core.db import new_session
from deepclust.app.core.encoding import EncoderRunner, EncoderSpec
from deepclust.app.core.npyfile import NpyWriter, open_array
from deepclust.app.core.settings import Settings
from deepclust.app.core.storage import ArtifactStore, embeddings_key
from deepclust.app.core.tables import Dataset, Encoder, Job
from deepclust.models import TrainingCancelled

log = logging.getLogger(__name__)
ENCODE = "encode"


@dataclass
class Encoded:
    """What the rest of the job needs: the embeddings, and what the model keeps of the encoder."""

    X: np.ndarray
    spec: EncoderSpec
    onnx: bytes


def encode(job: Job, dataset: Dataset, engine, store: ArtifactStore, reporter, settings: Settings,
           device: str) -> Encoded:
    with new_session(engine) as session:
        row = session.get(Encoder, job.encoder_id)
        if row is not None:
            session.expunge(row)
    if row is None or not store.exists(row.file_key):
        raise LookupError(f"encoder {job.encoder_id} no longer exists")
    spec = EncoderSpec.of(row, list(dataset.sample_shape))
    data = store.local_path(row.file_key).read_bytes()
    key = embeddings_key(dataset.id, row.id)
    n = dataset.n_samples
    if store.exists(key):
        X = open_array(store.local_path(key))
        if X.shape == (n, row.output_dim):
            reporter.enter_phase(ENCODE, 1)
            log.info("job %s: reusing the embeddings of dataset %s by encoder %s (%d×%d)", job.id, dataset.id,
                     row.id, *X.shape)
            _progress(reporter, 1, 1)
            return Encoded(X, spec, data)
        log.warning("job %s: the kept embeddings have shape %s, not (%d, %d); encoding again", job.id,
                    list(X.shape), n, row.output_dim)
    images = open_array(store.local_path(dataset.data_key))
    batch = settings.encode_batch_size
    batches = max(1, -(-n // batch))
    reporter.enter_phase(ENCODE, batches)
    runner = EncoderRunner(spec, data, device)
    log.info("job %s: encoding %d images of shape %s with encoder %s (%s, input %s, D=%d) on %s, %d per batch",
             job.id, n, list(dataset.sample_shape), row.id, row.name, row.input_shape, row.output_dim,
             runner.provider, batch)
    started = asked = time.monotonic()
    with store.staging_file(".npy") as tmp:
        writer = NpyWriter(tmp)
        try:
            for b in range(batches):
                out = runner.run(np.asarray(images[b * batch:(b + 1) * batch]))
                if out.shape[1] != row.output_dim or not np.isfinite(out).all():
                    raise ValueError(f"encoder {row.id} gave {list(out.shape)} with non-finite values or the wrong "
                                     f"width on batch {b} (expected D={row.output_dim})")
                writer.append(out)
                _progress(reporter, b + 1, batches)
                # cancel (and the runtime limit) asked at the progress pace, and after the last batch
                if b + 1 == batches or time.monotonic() - asked >= settings.progress_interval_seconds:
                    if reporter.should_stop():
                        raise TrainingCancelled(f"cancelled in {ENCODE} after batch {b + 1} of {batches}")
                    asked = time.monotonic()
            writer.close()
        except BaseException:
            writer.abort()
            raise
        store.publish(tmp, key)
    seconds = time.monotonic() - started
    log.info("job %s: encoded %d images in %.1f s (%.0f images/s)", job.id, n, seconds, n / max(seconds, 1e-9))
    return Encoded(open_array(store.local_path(key)), spec, data)


def _progress(reporter, done: int, total: int) -> None:
    reporter.progress = {**reporter.progress, "epoch": done, "epochs": total, "loss": None, "label_change": None}
    reporter.flush()
