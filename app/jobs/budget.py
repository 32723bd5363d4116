"""What one job may cost in memory, estimated from its validated params before it is queued.

A method's params schema bounds each number on its own; this bounds them together, against
``MAX_JOB_MEMORY_BYTES``, so that `hidden_dims: [60000, 60000]` (over 14 GB of weights) or a
batch of a million 784-wide rows is refused with 422 at submission instead of failing, or
swapping, in the worker. The estimate is deliberately simple and generous to the job: float32
weights with their gradient and two Adam moments, the pretrained autoencoder kept beside them,
one batch's activations forward and backward, and the full-data embedding and targets the
clustering phase holds. The dataset itself is memory-mapped and not counted.
"""
from __future__ import annotations

import math

from deepclust.app.errors import INVALID_PARAMS, JOB_TOO_LARGE

FLOAT = 4
MAX_LAYERS = 64
_BATCH_PARAMS = ("batch_size", "pretrain_batch_size")


def dense_autoencoder_params(n_features: int, hidden: list[int], embedding: int) -> int:
    widths = [n_features, *hidden, embedding]
    encoder = sum(a * b + b for a, b in zip(widths, widths[1:]))
    decoder = sum(a * b + b for a, b in zip(widths[::-1], widths[::-1][1:]))
    return encoder + decoder


def estimate_job_bytes(params: dict, n_samples: int, n_features: int, n_clusters: int) -> dict:
    """The parts of the estimate, in bytes, and their total."""
    batch = max((int(params[p]) for p in _BATCH_PARAMS if isinstance(params.get(p), int)), default=0)
    parts = {"batch_activations": 2 * batch * n_features * FLOAT * 2}
    hidden = params.get("hidden_dims")
    if isinstance(hidden, list):
        embedding = params.get("embedding_dim") or n_clusters
        weights = dense_autoencoder_params(n_features, hidden, embedding) + n_clusters * embedding
        parts["weights_and_optimizer"] = weights * FLOAT * 4
        parts["pretrained_copy"] = weights * FLOAT
        parts["batch_activations"] = batch * (2 * sum(hidden) + embedding + n_features) * FLOAT * 2
        parts["full_data_embedding_and_targets"] = n_samples * (embedding + 3 * n_clusters) * FLOAT
    parts["total"] = sum(parts.values())
    return parts


def check_job_budget(params: dict, n_samples: int, n_features: int, n_clusters: int, limit: int) -> None:
    """422 when the job's model cannot fit ``limit`` bytes (or its layers make no sense)."""
    hidden = params.get("hidden_dims")
    if isinstance(hidden, list):
        if not hidden or len(hidden) > MAX_LAYERS or any(not isinstance(w, int) or w < 1 for w in hidden):
            raise INVALID_PARAMS(f"hidden_dims must list 1 to {MAX_LAYERS} positive widths.",
                                 errors=[{"param": "hidden_dims", "message": f"1 to {MAX_LAYERS} widths, each >= 1"}])
    estimate = estimate_job_bytes(params, n_samples, n_features, n_clusters)
    if estimate["total"] > limit:
        biggest = max((k for k in estimate if k != "total"), key=estimate.get)
        raise JOB_TOO_LARGE(f"This job would need about {_gib(estimate['total'])} of memory, over the "
                            f"limit of {_gib(limit)} (DEEPCLUST_MAX_JOB_MEMORY_BYTES); most of it is "
                            f"{biggest.replace('_', ' ')}. Use smaller hidden_dims, embedding_dim or batch sizes.",
                            estimate_bytes=estimate["total"], limit_bytes=limit,
                            parts={k: v for k, v in estimate.items() if k != "total"})


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{math.ceil(n / 2**20)} MiB"
