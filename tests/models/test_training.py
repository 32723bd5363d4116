"""The DEC/IDEC clustering schedule of DEC-keras (docs/methods.md#dec): full-data targets every update_interval
iterations, tolerance stop on label change, sequential batches."""
import numpy as np
import torch

from deepclust.models import FINETUNE, Callback, DeepClusterer
from deepclust.models.training.data import batch_order


class TargetLog(Callback):
    def __init__(self):
        self.updates = []

    def on_labels(self, phase, iteration, labels, label_change):
        if phase == FINETUNE:  # the target updates
            self.updates.append((iteration, len(labels), label_change))


def test_target_every_update_interval_until_maxiter(blobs, tiny):
    log = TargetLog()
    tiny.update(tol=0.0, maxiter=100, update_interval=30)
    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(blobs[0], callbacks=[log])
    assert [u[0] for u in log.updates] == [0, 30, 60, 90]
    assert all(n == 600 for _, n, _ in log.updates)  # the target is computed on the full data
    # 100 iterations of 64-sample batches over 600 samples: epochs of 10 iterations.
    assert len([h for h in est.history_ if h["phase"] == "finetune"]) == 10


def test_tolerance_stops_at_the_first_update_after_the_start(blobs, tiny):
    log = TargetLog()
    tiny.update(tol=1.0, maxiter=1000, update_interval=15)  # unless every label changed
    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(blobs[0], callbacks=[log])
    assert [u[0] for u in log.updates] == [0, 15]
    finetune = [h for h in est.history_ if h["phase"] == "finetune"]
    assert [h["epoch"] for h in finetune] == [0, 1]  # one full epoch and the partial one it stopped in


def test_batch_orders():
    assert batch_order(5, 3, 0, "sequential").tolist() == [0, 1, 2, 3, 4]
    first = batch_order(50, 0, 7, "sequential_then_shuffle")
    assert first.tolist() == list(range(50))
    a, b = batch_order(50, 1, 7, "shuffle"), batch_order(50, 1, 7, "shuffle")
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(50))
    assert not torch.equal(a, batch_order(50, 2, 7, "shuffle"))
    assert torch.equal(batch_order(50, 1, 7, "sequential_then_shuffle"), a)


def test_dec_moves_only_encoder_and_centres(blobs, tiny):
    tiny.update(maxiter=40, tol=0.0)
    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(blobs[0])
    pretrained = est.pretrained_state_
    final = est.model_.autoencoder.state_dict()
    assert all(torch.equal(final[k], pretrained[k]) for k in final if k.startswith("decoder"))
    assert not all(torch.equal(final[k], pretrained[k]) for k in final if k.startswith("encoder"))
    idec = DeepClusterer("idec", 4, random_state=0, scaling="standard", **tiny).fit(blobs[0])
    final = idec.model_.autoencoder.state_dict()
    assert not all(torch.equal(final[k], idec.pretrained_state_[k]) for k in final if k.startswith("decoder"))
    assert np.isfinite(idec.cluster_centers_).all()
