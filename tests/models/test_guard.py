"""The guard against degenerate clusterings, in the one training loop: a run forced to collapse
ends on its last healthy state, says so, and does the same after a kill and resume."""
import numpy as np
import pytest

from deepclust.models import DeepClusterer, TrainingCancelled, load_checkpoint
from deepclust.models.training.guard import cluster_health, degenerate
from stop_after import StopAfter

COLLAPSE = {"tol": 0.0, "lr": 2.0}  # DEC's SGD at lr 2 empties clusters after two epochs on the blobs




def make(tiny, guard="restore", **extra):
    return DeepClusterer("dec", 4, random_state=3, scaling="standard", guard=guard, **{**tiny, **COLLAPSE, **extra})


def test_health_and_degeneracy():
    assert cluster_health([0, 0, 1, 1], 2) == {"nonempty_clusters": 2, "largest_cluster_fraction": 0.5,
                                               "size_entropy": 1.0}
    h = cluster_health([0, 0, 0, 1], 3)
    assert h["nonempty_clusters"] == 2 and h["largest_cluster_fraction"] == 0.75
    assert degenerate(h, 3) == ["clusters_emptied", "cluster_dominant"]
    assert degenerate(cluster_health([0, 0, 0, 1], 2), 2) == []  # K = 2: a majority is no collapse


def test_collapse_is_restored_to_a_healthy_state(blobs, tiny):
    X, _ = blobs
    warned = make(tiny, "warn").fit(X)
    assert warned.health_["nonempty_clusters"] < 4 and warned.health_["guard"] == "warned"
    assert {w["code"] for w in warned.warnings_} >= {"clusters_emptied"}

    est = make(tiny).fit(X)
    assert len(np.unique(est.labels_)) == 4
    assert est.health_["nonempty_clusters"] == 4 and est.health_["guard"] == "restored"
    assert est.health_["restored_epoch"] == 1
    (restored,) = [w for w in est.warnings_ if w["code"] == "restored"]
    assert restored["details"] == {"phase": "finetune", "epoch": 1, "degenerated_epoch": 2,
                                   "codes": ["clusters_emptied", "cluster_dominant"]}
    assert not [w for w in est.warnings_ if w["code"] in ("clusters_emptied", "cluster_dominant")]
    # the phase ended where it degenerated: two fine-tuning epochs in the history
    assert [r["epoch"] for r in est.history_ if r["phase"] == "finetune"] == [0, 1]

    off = make(tiny, "off").fit(X)
    assert off.health_["guard"] == "off"
    np.testing.assert_array_equal(off.labels_, warned.labels_)  # looking changes nothing


def test_restored_state_survives_kill_and_resume(tmp_path, blobs, tiny):
    X, _ = blobs
    reference = make(tiny).fit(X)
    stopper = StopAfter(tmp_path / "ckpt.pt", 11)  # 10 pretraining epochs, then the first healthy fine-tuning one
    with pytest.raises(TrainingCancelled):
        make(tiny).fit(X, callbacks=[stopper])
    state = load_checkpoint(tmp_path / "ckpt.pt")
    assert state["phase"] == "finetune" and state["guard"]["healthy"]["epoch"] == 1
    resumed = make(tiny).fit(X, resume_from=state)
    assert resumed.health_ == reference.health_ and resumed.warnings_ == reference.warnings_
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))
    assert resumed.history_ == reference.history_

    # the checkpoint written when the guard restored: resuming from it ends there too
    stopper = StopAfter(tmp_path / "last.pt", 12)
    with pytest.raises(TrainingCancelled):
        make(tiny).fit(X, callbacks=[stopper])
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["phase_stopped"] and state["guard"]["restored"]["epoch"] == 1
    again = make(tiny).fit(X, resume_from=state)
    np.testing.assert_array_equal(again.labels_, reference.labels_)
    assert again.warnings_ == reference.warnings_


def test_a_healthy_run_is_not_touched(blobs, tiny):
    X, _ = blobs
    on = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(X)
    off = DeepClusterer("dec", 4, random_state=0, scaling="standard", guard="off", **tiny).fit(X)
    assert on.health_["guard"] is None and on.warnings_ == []
    np.testing.assert_array_equal(on.labels_, off.labels_)
    np.testing.assert_array_equal(on.predict_proba(X), off.predict_proba(X))
    assert on.history_ == off.history_


def test_unknown_guard_is_refused(blobs, tiny):
    with pytest.raises(ValueError, match="unknown guard"):
        DeepClusterer("dec", 4, guard="maybe", **tiny).fit(blobs[0])
