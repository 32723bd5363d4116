"""Sweeps over K and seeds through the estimator: the table, the choice, the reused pretraining."""
import pytest

from deepclust.models import Callback
from deepclust.models.restarts import TABLE_COLUMNS
from deepclust.models.sweep import sweep_k


class PhaseCounter(Callback):
    def __init__(self):
        self.phases = []

    def on_phase_begin(self, phase, epochs):
        self.phases.append(phase)


def test_idec_sweep_recommends_the_true_k_and_pretrains_once_per_seed(blobs, tiny):
    X, y = blobs
    counter = PhaseCounter()
    tiny["maxiter"] = 150
    table = sweep_k(X, "idec", [3, 4, 5], seeds=[0, 1], scaling="standard", callbacks=[counter], **tiny)
    assert [(r["n_clusters"], r["seed"]) for r in table] == [(3, 0), (4, 0), (5, 0), (3, 1), (4, 1), (5, 1)]
    assert all(list(r) == list(TABLE_COLUMNS) for r in table)
    (chosen,) = [r for r in table if r["selected"]]
    assert chosen["n_clusters"] == 4
    stab = {r["n_clusters"]: r["stability"] for r in table if r["seed"] == 0}
    assert stab[4] == pytest.approx(1.0, abs=1e-6) and stab[3] < 0.95 and stab[5] < 0.95
    # one pretraining per seed, reused by the seed's other K's; every run fine-tunes
    assert counter.phases.count("pretrain") == 2
    assert counter.phases.count("finetune") == 6


def test_kmeans_sweep_on_subsamples(blobs):
    X, _ = blobs
    table = sweep_k(X, "kmeans", [3, 4, 5, 6], seeds=[0, 1, 2], subsample=0.7, scaling="standard", n_init=3)
    (chosen,) = [r for r in table if r["selected"]]
    assert chosen["n_clusters"] == 4
    assert all(r["n_nonempty"] == r["n_clusters"] for r in table)


def test_internal_criterion_and_frame_free_output(blobs):
    X, _ = blobs
    table = sweep_k(X, "kmeans", [3, 4, 5], seeds=[0], selection="input_silhouette", scaling="standard",
                    n_init=2)
    assert [r["stability"] for r in table] == [None, None, None]
    assert [r["n_clusters"] for r in table if r["selected"]] == [4]
    assert isinstance(table, list)


@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": [0]}, "at least two seeds"),
    ({"selection": "acc"}, "unknown selection"),
    ({"subsample": 1.5}, "subsample"),
    ({"n_clusters": [3, 3]}, "repeat"),
])
def test_sweep_refuses_bad_arguments(blobs, kwargs, message):
    X, _ = blobs
    with pytest.raises(ValueError, match=message):
        sweep_k(X, "kmeans", **{"n_clusters": [3, 4], **kwargs})

