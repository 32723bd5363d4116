"""The estimator's restarts (models.restarts): the medoid or best-criterion run is kept and refits alone."""
import numpy as np
import pytest

from deepclust.models import DeepClusterer
from deepclust.models.metrics import cluster_accuracy


def test_restarts_keep_the_medoid_run_and_it_refits_alone(blobs, tiny):
    X, y = blobs
    tiny["maxiter"] = 100
    est = DeepClusterer("dec", 4, random_state=5, scaling="standard", n_restarts=3, **tiny).fit(X)
    assert [r["seed"] for r in est.restarts_] == [5, 6, 7]
    (chosen,) = [r for r in est.restarts_ if r["selected"]]
    assert chosen["seed"] == est.restart_seed_
    assert chosen["stability"] == max(r["stability"] for r in est.restarts_)
    assert cluster_accuracy(y, est.labels_) >= 0.95
    assert (est.predict(X) == est.labels_).all()
    alone = DeepClusterer("dec", 4, random_state=est.restart_seed_, scaling="standard", **tiny).fit(X)
    np.testing.assert_array_equal(alone.labels_, est.labels_)
    assert est.get_params()["n_restarts"] == 3 and est.random_state == 5  # params untouched


def test_restarts_by_a_named_criterion(blobs):
    X, _ = blobs
    est = DeepClusterer("kmeans", 6, random_state=0, scaling="standard", n_init=1, n_restarts=4,
                        selection="input_silhouette").fit(X)
    best = max(r["input_silhouette"] for r in est.restarts_)
    assert [r["input_silhouette"] for r in est.restarts_ if r["selected"]] == [best]


@pytest.mark.parametrize("kwargs, fit_kwargs, message", [
    ({"n_restarts": 0}, {}, "n_restarts"),
    ({"n_restarts": 2, "selection": "acc"}, {}, "unknown selection"),
    ({"selection": "acc"}, {}, "unknown selection"),
    ({"n_restarts": 2}, {"resume_from": {"method": "kmeans"}}, "resume_from"),
])
def test_restart_arguments_are_checked(blobs, kwargs, fit_kwargs, message):
    X, _ = blobs
    with pytest.raises(ValueError, match=message):
        DeepClusterer("kmeans", 3, **kwargs).fit(X, **fit_kwargs)
