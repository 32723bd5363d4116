"""k-means in torch (models/training/kmeans.py): as good as scikit-learn's, deterministic per seed,
and chosen by the ``kmeans_backend`` setting (scikit-learn stays the CPU default)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from deepclust.models import DeepClusterer
from deepclust.models.training.kmeans import fit_kmeans, resolve_backend, torch_kmeans


def _digits():
    return (load_digits().data / 16).astype(np.float32)


def _blobs():
    return make_blobs(3000, centers=8, n_features=10, random_state=3)[0].astype(np.float32)


@pytest.mark.parametrize(("name", "k"), [("digits", 10), ("digits", 5), ("blobs", 8), ("blobs", 5)])
def test_inertia_within_half_a_percent_of_scikit_learn(name, k):
    X = _digits() if name == "digits" else _blobs()
    reference = KMeans(k, n_init=10, random_state=3).fit(X).inertia_
    centers, labels, inertia = torch_kmeans(X, k, n_init=10, seed=3)
    assert inertia <= reference * 1.005, (inertia, reference)
    assert centers.shape == (k, X.shape[1]) and labels.shape == (len(X),)
    # the inertia reported is the one of the centres and labels returned
    assert inertia == pytest.approx(float(((X - centers[labels]) ** 2).sum()), rel=1e-4)


def test_same_seed_same_result_other_seed_other_draw():
    X = _digits()
    a = torch_kmeans(X, 10, n_init=4, seed=7)
    b = torch_kmeans(X, 10, n_init=4, seed=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    c = torch_kmeans(X, 10, n_init=1, seed=8)
    d = torch_kmeans(X, 10, n_init=1, seed=9)
    assert not np.array_equal(c[0], d[0])


def test_backend_choice():
    assert resolve_backend("auto", "cpu") == "sklearn"
    assert resolve_backend("auto", torch.device("cuda", 0)) == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("sklearn", "cuda") == "sklearn"
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("faiss", "cpu")


def test_fit_kmeans_keeps_centres_on_the_device_and_matches_sklearn_path():
    X = torch.from_numpy(_blobs())
    for backend in ("torch", "sklearn"):
        centers, labels, inertia = fit_kmeans(X, 8, n_init=3, seed=0, backend=backend)
        assert isinstance(centers, torch.Tensor) and centers.dtype == torch.float32 and centers.device == X.device
        assert labels.dtype == np.int64 and len(labels) == len(X)
    # well separated blobs: both find the same partition
    t, s = fit_kmeans(X, 8, n_init=3, seed=0, backend="torch"), fit_kmeans(X, 8, n_init=3, seed=0, backend="sklearn")
    assert t[2] == pytest.approx(s[2], rel=1e-3)


def test_methods_take_the_setting():
    X = _digits()[:300]
    dec = DeepClusterer("dec", 5, random_state=0, device="cpu", hidden_dims=[16], embedding_dim=3,
                        pretrain_epochs=1, maxiter=5, update_interval=5, kmeans_n_init=2,
                        kmeans_backend="torch").fit(X)
    assert dec.labels_.shape == (300,)
    km = DeepClusterer("kmeans", 5, random_state=0, device="cpu", n_init=3, backend="torch").fit(X)
    ref = DeepClusterer("kmeans", 5, random_state=0, device="cpu", n_init=3).fit(X)
    assert km.history_[0]["inertia"] == pytest.approx(ref.history_[0]["inertia"], rel=5e-3)
