"""Checkpoints: a run stopped anywhere and resumed from its last checkpoint ends exactly like an
uninterrupted one (weights, optimiser, target, iteration and batch order all restored)."""
import numpy as np
import pytest

from deepclust.models import Callback, DeepClusterer, TrainingCancelled, load_checkpoint
from stop_after import StopAfter




@pytest.mark.parametrize("method,stop_after", [
    ("dec", 4),    # inside pretraining (10 epochs)
    ("idec", 13),  # inside fine-tuning
])
def test_resume_equals_uninterrupted(tmp_path, blobs, tiny, method, stop_after):
    X, _ = blobs
    tiny["tol"] = 0.0  # all 30 fine-tuning epochs, so the stop lands inside them
    make = lambda: DeepClusterer(method, 4, random_state=3, scaling="standard", **tiny)  # noqa: E731
    reference = make().fit(X)

    stopper = StopAfter(tmp_path / "ckpt.pt", stop_after)
    with pytest.raises(TrainingCancelled):
        make().fit(X, callbacks=[stopper])
    state = load_checkpoint(tmp_path / "ckpt.pt")
    assert state["phase"] == ("pretrain" if stop_after <= 10 else "finetune")
    assert len(state["history"]) == stop_after

    resumed = make().fit(X, resume_from=state)
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))
    assert resumed.history_ == reference.history_


def test_checkpoint_of_another_method_is_refused(tmp_path, blobs, tiny):
    X, _ = blobs
    stopper = StopAfter(tmp_path / "ckpt.pt", 1)
    with pytest.raises(TrainingCancelled):
        DeepClusterer("dec", 4, random_state=0, **tiny).fit(X, callbacks=[stopper])
    with pytest.raises(ValueError, match="checkpoint is of method 'dec', not 'idec'"):
        DeepClusterer("idec", 4, **tiny).fit(X, resume_from=load_checkpoint(tmp_path / "ckpt.pt"))


def test_no_checkpoint_copies_without_a_listener(blobs, tiny):
    seen = []

    class Progress(Callback):
        def on_epoch_end(self, phase, epoch, epochs, logs):
            seen.append((phase, epoch, epochs))

    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(blobs[0], callbacks=[Progress()])
    assert seen[:10] == [("pretrain", e, 10) for e in range(10)]
    assert len(seen) == len(est.history_)
