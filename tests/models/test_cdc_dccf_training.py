"""CDC and DCCF trained end to end on small blobs: they cluster them, their paper variants and
options run, their schedules (CDC: all T iterations; DCCF: a target per epoch and the 0.1% stop)
hold, the history carries every loss term, and a stopped run resumes exactly."""
import math

import numpy as np
import pytest
import torch

from deepclust.models import FINETUNE, Callback, DeepClusterer, TrainingCancelled
from deepclust.models.metrics import cluster_accuracy

NET = {"hidden_dims": [32, 32], "embedding_dim": 5, "pretrain_epochs": 10, "pretrain_batch_size": 64,
       "batch_size": 64, "kmeans_n_init": 5}
CDC = {**NET, "maxiter": 300, "update_interval": 20}
DCCF = {**NET, "max_epochs": 30}
PER_EPOCH = math.ceil(600 / 64)  # iterations in one pass over the 600 blobs


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run far faster on one thread than contending for two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Recorder(Callback):
    """Target-update iterations and label changes, checkpoints, and a stop after ``stop_after`` of them."""

    def __init__(self, stop_after=None):
        self.iterations, self.changes, self.states, self.stop_after = [], [], [], stop_after

    def on_labels(self, phase, iteration, labels, label_change):
        if phase == FINETUNE:  # the target updates
            self.iterations.append(iteration)
            self.changes.append(label_change)

    def on_checkpoint(self, state):
        self.states.append(state)

    def should_stop(self):
        return self.stop_after is not None and len(self.states) >= self.stop_after


def fit(method, X, params, callbacks=(), seed=0, **extra):
    return DeepClusterer(method, 4, random_state=seed, scaling="standard", **params, **extra).fit(
        X, callbacks=list(callbacks))


def phase_rows(est, phase):
    return [h for h in est.history_ if h["phase"] == phase]


@pytest.mark.parametrize("method, params", [
    ("cdc", {**CDC, "variant": "code"}),
    ("cdc", {**CDC, "variant": "paper"}),
    ("cdc", {**CDC, "corr_weight": 0.0, "affinity_weight": 0.0}),  # ablation: L_c only
    ("dccf", DCCF),
    ("dccf", {**DCCF, "jacobian": "hutchinson", "focal": "soft"}),
    ("dccf", {**DCCF, "focal": "categorical", "contractive_in_pretrain": True}),
], ids=["cdc-code", "cdc-paper", "cdc-lc-only", "dccf", "dccf-hutchinson-soft", "dccf-categorical"])
def test_clusters_blobs(blobs, method, params):
    X, y = blobs
    est = fit(method, X, params)
    assert cluster_accuracy(y, est.labels_) >= 0.95
    assert (est.predict(X) == est.labels_).all() and est.transform(X).shape == (600, 5)


def test_cdc_history_has_each_term_and_all_t_iterations_run(blobs):
    rec = Recorder()
    est = fit("cdc", blobs[0], CDC, [rec])
    pretrain, finetune = phase_rows(est, "pretrain"), phase_rows(est, "finetune")
    assert len(pretrain) == 10
    for h in pretrain:
        assert h["loss"] == pytest.approx(h["reconstruction"] + 1e-3 * (h["corr_embedding"] + h["corr_output"]),
                                          rel=1e-5)
    # No tolerance stop: all T = 300 iterations, a target every h = 20.
    assert len(finetune) == math.ceil(300 / PER_EPOCH)
    assert rec.iterations == list(range(0, 300, 20))
    for h in finetune:
        assert "reconstruction" not in h
        assert h["loss"] == pytest.approx(h["kl"] + 0.75 * h["affinity"]
                                          + 1e-3 * (h["corr_embedding"] + h["corr_output"]), rel=1e-5)
    paper = fit("cdc", blobs[0], {**CDC, "maxiter": 20, "variant": "paper"})
    assert all("reconstruction" in h for h in phase_rows(paper, "finetune"))  # Algorithm 1's decoder step


def test_dccf_targets_every_epoch_and_stops_on_label_change(blobs):
    X, _ = blobs
    rec = Recorder()
    est = fit("dccf", X, {**DCCF, "max_epochs": 4, "tol": None}, [rec])
    assert rec.iterations == [0, PER_EPOCH, 2 * PER_EPOCH, 3 * PER_EPOCH]
    assert len(phase_rows(est, "finetune")) == 4

    rec = Recorder()
    est = fit("dccf", X, DCCF, [rec])
    assert len(rec.iterations) < 30 and rec.changes[-1] < 0.001  # stopped on δ, not on max_epochs
    assert all(c >= 0.001 for c in rec.changes[1:-1])
    assert len(phase_rows(est, "finetune")) == len(rec.iterations) - 1


def test_dccf_history_terms_and_embedding_width(blobs):
    X, _ = blobs
    params = {**DCCF, "embedding_dim": None, "pretrain_epochs": 3, "max_epochs": 2}
    est = fit("dccf", X, params)
    assert est.transform(X).shape == (600, 4) and est.cluster_centers_.shape == (4, 4)  # d' = K
    assert all(set(h) == {"phase", "epoch", "loss", "reconstruction"} for h in phase_rows(est, "pretrain"))
    for h in phase_rows(est, "finetune"):
        assert h["loss"] == pytest.approx(h["reconstruction"] + 1e-7 * h["contractive"]
                                          + 0.1 * (h["kl"] + h["focal"]), rel=1e-5)
    est = fit("dccf", X, params, contractive_in_pretrain=True, contractive_weight=1e-3, focal="none")
    for h in phase_rows(est, "pretrain"):
        assert h["loss"] == pytest.approx(h["reconstruction"] + 1e-3 * h["contractive"], rel=1e-5)
    assert all("focal" not in h for h in phase_rows(est, "finetune"))


@pytest.mark.parametrize("method, params, pretrain_epochs, finetune_epochs", [
    ("cdc", {**CDC, "maxiter": 10 * PER_EPOCH, "variant": "paper"}, 3, 4),
    ("dccf", {**DCCF, "max_epochs": 5, "tol": None, "batch_order": "shuffle"}, 2, 3),
])
def test_resumes_mid_finetuning_exactly(blobs, method, params, pretrain_epochs, finetune_epochs):
    X, _ = blobs
    # guard="warn": DCCF after two pretraining epochs empties a cluster in its second epoch, and
    # the default guard would end the phase there, before the stop this test resumes from
    params = {**params, "pretrain_epochs": pretrain_epochs, "guard": "warn"}
    reference = fit(method, X, params, seed=2)
    stopper = Recorder(stop_after=pretrain_epochs + finetune_epochs)
    with pytest.raises(TrainingCancelled):
        fit(method, X, params, [stopper], seed=2)
    state = stopper.states[-1]
    assert state["phase"] == "finetune" and state["iteration"] == finetune_epochs * PER_EPOCH
    resumed = DeepClusterer(method, 4, random_state=2, scaling="standard", **params).fit(X, resume_from=state)
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    assert resumed.history_ == reference.history_
