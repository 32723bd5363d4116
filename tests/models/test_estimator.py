import tracemalloc

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from deepclust.models import DeepClusterer, InvalidParams
from deepclust.models.metrics import cluster_accuracy


@pytest.mark.parametrize("method", ["dec", "idec", "kmeans"])
def test_methods_recover_well_separated_blobs(blobs, tiny, method):
    X, y = blobs
    params = {} if method == "kmeans" else tiny
    est = DeepClusterer(method, 4, random_state=0, scaling="standard", **params).fit(X)
    assert cluster_accuracy(y, est.labels_) >= 0.95
    assert est.labels_.shape == (600,) and set(est.labels_) <= set(range(4))
    assert (est.predict(X) == est.labels_).all()
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(est.confidences_, proba.max(1), rtol=1e-6)
    d = 20 if method == "kmeans" else 4
    assert est.cluster_centers_.shape == (4, d) and est.transform(X).shape == (600, d)
    assert est.n_features_in_ == 20 and est.sample_shape_ == (20,)


def test_history_has_a_row_per_epoch_with_each_loss_term(blobs, tiny):
    X, _ = blobs
    est = DeepClusterer("idec", 4, random_state=0, scaling="standard", **tiny).fit(X)
    pretrain = [h for h in est.history_ if h["phase"] == "pretrain"]
    finetune = [h for h in est.history_ if h["phase"] == "finetune"]
    assert [h["epoch"] for h in pretrain] == list(range(10))
    assert all({"loss", "reconstruction"} <= set(h) for h in pretrain)
    assert pretrain[-1]["loss"] < pretrain[0]["loss"]
    assert finetune and all({"loss", "reconstruction", "kl", "label_change"} <= set(h) for h in finetune)
    for h in finetune:
        assert h["loss"] == pytest.approx(h["reconstruction"] + 0.1 * h["kl"], rel=1e-5)


def test_same_random_state_same_result_and_global_rng_untouched(blobs, tiny):
    X, _ = blobs
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = DeepClusterer("dec", 4, random_state=7, scaling="standard", **tiny).fit(X)
    assert torch.rand(1) == before  # fit forks the RNG: the caller's stream is not consumed
    b = DeepClusterer("dec", 4, random_state=7, scaling="standard", **tiny).fit(X)
    c = DeepClusterer("dec", 4, random_state=8, scaling="standard", **tiny).fit(X)
    assert (a.labels_ == b.labels_).all()
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.history_ == b.history_
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)


def test_uint8_images_are_scaled_and_flattened_input_predicts(tmp_path, tiny):
    rng = np.random.default_rng(0)
    means = rng.integers(0, 256, (3, 1, 4, 4))
    y = np.repeat(np.arange(3), 40)
    X = np.clip(means[y] + rng.normal(0, 8, (120, 1, 4, 4)), 0, 255).astype(np.uint8)
    est = DeepClusterer("dec", 3, random_state=0, **tiny).fit(X)
    assert est.scaler_.kind == "divide255" and est.sample_shape_ == (1, 4, 4) and est.n_features_in_ == 16
    assert cluster_accuracy(y, est.labels_) >= 0.95
    assert (est.predict(X.reshape(120, 16)) == est.labels_).all()
    np.testing.assert_array_equal(est.transform(X), est.transform(X.reshape(120, 16)))


@pytest.mark.parametrize("scaling", ["minmax", "standard"])
def test_fitted_scaling_is_replayed_at_predict(blobs, scaling):
    X, _ = blobs
    est = DeepClusterer("kmeans", 4, random_state=0, scaling=scaling).fit(X)
    Xs = est.transform(X)  # k-means embeds the scaled input itself
    if scaling == "minmax":
        np.testing.assert_allclose(Xs.min(0), 0, atol=1e-6)
        np.testing.assert_allclose(Xs.max(0), 1, atol=1e-6)
    else:
        np.testing.assert_allclose(Xs.mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(Xs.std(0), 1, atol=1e-4)
    # New data is scaled with the training statistics, not its own.
    np.testing.assert_allclose(est.transform(X[:5] + 1), Xs[:5] + est.scaler_.scale, rtol=1e-5, atol=1e-5)


def test_memmap_gives_the_same_model_as_in_memory(tmp_path, blobs, tiny):
    X, _ = blobs
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    from_disk = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(mm)
    in_memory = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(X)
    assert (from_disk.labels_ == in_memory.labels_).all()
    np.testing.assert_allclose(from_disk.cluster_centers_, in_memory.cluster_centers_, rtol=1e-5, atol=1e-5)


def test_memmap_is_never_copied_whole(tmp_path, tiny):
    X = np.random.default_rng(0).normal(size=(50_000, 200)).astype(np.float32)  # 40 MB
    np.save(tmp_path / "x.npy", X)
    del X
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    params = {**tiny, "hidden_dims": [16], "pretrain_epochs": 1, "maxiter": 5, "kmeans_n_init": 1}
    DeepClusterer("dec", 3, random_state=0, **params).fit(mm[:500])  # warm up lazy imports and caches
    # numpy reports its buffers to tracemalloc, so a copy of the memmap would show in the peak.
    tracemalloc.start()
    try:
        DeepClusterer("dec", 3, random_state=0, **params).fit(mm)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < mm.nbytes / 4, f"peak numpy allocation {peak / 1e6:.1f} MB for a {mm.nbytes / 1e6:.0f} MB memmap"


def test_assigning_a_method_param_is_set_params(blobs, tiny):
    X, _ = blobs
    tiny.update(maxiter=40, tol=0.0)
    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny)
    est.maxiter = 5
    assert est.maxiter == 5 and est.get_params()["maxiter"] == 5 and "maxiter" not in vars(est)
    assert clone(est).get_params()["maxiter"] == 5
    est.fit(X)
    assert est.params_["maxiter"] == 5
    assert len([h for h in est.history_ if h["phase"] == "finetune"]) == 1  # 5 iterations of 10 per epoch
    same = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).set_params(maxiter=5).fit(X)
    assert same.history_ == est.history_
    # Any other public name stays a plain attribute, as on every scikit-learn estimator.
    est.note = "mine"
    assert "note" not in est.get_params() and est.note == "mine"
    # Another method's param is a param too, so fit says loudly that this method has none such.
    km = DeepClusterer("kmeans", 4, random_state=0)
    km.maxiter = 5
    with pytest.raises(InvalidParams, match="maxiter: unknown parameter"):
        km.fit(X)


def test_inference_fast_path_gives_the_general_paths_numbers(tmp_path, blobs, tiny):
    X, _ = blobs
    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(X)
    proba = est.predict_proba(X)
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")  # read row by row through ArrayData
    np.testing.assert_array_equal(est.predict_proba(mapped), proba)
    np.testing.assert_array_equal(est.predict_proba(X.tolist()), est.predict_proba(X.astype(np.float64)))
    np.testing.assert_array_equal(est.transform(mapped), est.transform(X))
    assert est.predict_proba(np.tile(X, (7, 1))).shape == (4200, 4)  # more than one chunk
    with pytest.raises(ValueError, match="NaN"):
        est.predict(np.where(np.eye(2, 20) > 0, np.nan, 0.0))
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :5])
    with pytest.raises(NotFittedError):
        DeepClusterer("dec", 4).predict(X)


def test_large_freed_blocks_go_back_to_the_os():
    from deepclust.models.training.memory import return_large_blocks

    assert return_large_blocks() and return_large_blocks()  # glibc here; once per process


def test_predicting_a_read_only_array_gives_no_warning():
    import warnings

    from sklearn.datasets import make_blobs

    X, _ = make_blobs(60, 4, centers=3, random_state=0)
    est = DeepClusterer("kmeans", 3, random_state=0).fit(X.astype(np.float32))
    read_only = X.astype(np.float32)
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "not writable" UserWarning would fail here
        assert (est.predict(read_only) == est.labels_).all()
