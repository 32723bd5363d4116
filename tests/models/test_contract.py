"""The contract every registered method keeps, checked for each one with its tiny preset.

Parametrised over ``list_methods()`` at collection: registering a method is all it takes to be
covered (``test_a_newly_registered_method_is_covered`` proves it with a method defined in the
tests). For each method: scikit-learn's estimator checks, the model contract, the save/load
round trip (bit-identical predictions), resume from a checkpoint in the middle of every phase
that writes one (the same result as an uninterrupted run), determinism, and reuse of the
pretrained autoencoder.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.utils.estimator_checks import estimator_checks_generator

from deepclust.models import (INIT, PRETRAIN, Callback, ClusterNetwork, DeepClusterer, build_network, list_methods, load_checkpoint,
                    save_checkpoint, tiny_preset)

METHODS = [m.name for m in list_methods()]
# scikit-learn's checks and the one-feature tests feed 2-D feature matrices: they cover the methods
# that take features. Image-only methods (convolutional networks) get every other test on images.
FEATURE_METHODS = [m.name for m in list_methods() if "features" in m.input_kinds]
IMAGE_ONLY = [m for m in METHODS if m not in FEATURE_METHODS]
ROOT = Path(__file__).resolve().parents[2]

# These checks set ``n_clusters = 1`` before fitting. A clustering into one cluster is
# meaningless for every method here and the library rejects it by design (``n_clusters`` must be
# at least 2), so they cannot pass. What each of them checks is tested with n_clusters=2 below.
SETS_ONE_CLUSTER = {
    "check_dont_overwrite_parameters": "sets n_clusters=1; see test_fit_does_not_change_params",
    "check_methods_subset_invariance": "sets n_clusters=1; see test_predictions_do_not_depend_on_batching",
    "check_fit2d_1feature": "sets n_clusters=1; see test_one_feature_fits",
    "check_fit2d_predict1d": "sets n_clusters=1; see test_1d_input_to_predict_is_an_error",
}
# Skips itself unless SCIPY_ARRAY_API=1 was set before scipy was imported, which would change
# scipy for the whole session: test_array_api_dispatch_with_numpy runs it in a subprocess instead.
RUN_ELSEWHERE = {"check_array_api_input": "needs SCIPY_ARRAY_API=1; see test_array_api_dispatch_with_numpy"}


def estimator(method, n_clusters=3, **extra):
    return DeepClusterer(method, n_clusters, random_state=0, **tiny_preset(method), **extra)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run far faster on one thread than contending for two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def blobs3():
    """Three blobs in six dimensions: 120 samples, several batches of the tiny presets per pass."""
    X, _ = make_blobs(n_samples=120, n_features=6, centers=3, cluster_std=1.0, random_state=0)
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def blobs3_images():
    """The same for image-only methods: three blobs of 120 single-channel 8×8 images."""
    X, _ = make_blobs(n_samples=120, n_features=64, centers=3, cluster_std=1.0, random_state=0)
    return X.reshape(-1, 1, 8, 8).astype(np.float32)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(6, 1, (30, 4))])


@pytest.fixture
def data_images():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(0, 1, (30, 1, 8, 8)), rng.normal(6, 1, (30, 1, 8, 8))])


def pick(method, features, images):
    """The test data a method takes: the feature matrix, or the images for an image-only method."""
    return features if method in FEATURE_METHODS else images


class Checkpoints(Callback):
    def __init__(self):
        self.states = []

    def on_checkpoint(self, state):
        self.states.append(state)


# -- scikit-learn -------------------------------------------------------------------------------------
def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


def _sklearn_checks(one_cluster: bool):
    for method in FEATURE_METHODS:
        for est, check in estimator_checks_generator(estimator(method)):
            name = _check_name(check)
            if name not in RUN_ELSEWHERE and (name in SETS_ONE_CLUSTER) == one_cluster:
                yield pytest.param(est, check, id=f"{method}-{name}")


@pytest.mark.parametrize("est, check", list(_sklearn_checks(one_cluster=False)))
def test_sklearn_compatible(est, check):
    check(est)


@pytest.mark.parametrize("est, check", list(_sklearn_checks(one_cluster=True)))
def test_checks_that_set_one_cluster_fail_on_that_alone(est, check):
    # Some checks let the ValueError through, others re-raise it as an AssertionError when its
    # message is not the one they expect; either way, n_clusters=1 must be the only reason.
    with pytest.raises((ValueError, AssertionError)) as info:
        check(est)
    error = info.value if isinstance(info.value, ValueError) else info.value.__cause__
    assert isinstance(error, ValueError) and "n_clusters must be at least 2, got 1" in str(error)


@pytest.mark.parametrize("method", METHODS)
def test_fit_does_not_change_params(method, data, data_images):
    data = pick(method, data, data_images)
    est = estimator(method, 2)
    before = est.get_params()
    est.fit(data)
    assert est.get_params() == before
    # Fitted state lives in trailing-underscore attributes only.
    public = {k for k in vars(est) if not k.startswith("_")}
    assert public - set(before) == {k for k in public if k.endswith("_")}


@pytest.mark.parametrize("method", METHODS)
def test_predictions_do_not_depend_on_batching(method, data, data_images):
    data = pick(method, data, data_images)
    est = estimator(method, 2).fit(data)
    whole = est.predict_proba(data)
    parts = np.concatenate([est.predict_proba(data[i:i + 7]) for i in range(0, len(data), 7)])
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)
    assert (parts.argmax(1) == est.predict(data)).all()
    np.testing.assert_allclose(
        np.concatenate([est.transform(data[i:i + 7]) for i in range(0, len(data), 7)]),
        est.transform(data), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_one_feature_fits(method, data):
    est = estimator(method, 2).fit(data[:, :1])
    assert est.n_features_in_ == 1
    assert est.predict(data[:, :1]).shape == (len(data),)


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_1d_input_to_predict_is_an_error(method, data):
    est = estimator(method, 2).fit(data)
    with pytest.raises(ValueError, match="Expected 2D array"):
        est.predict(data[0])


@pytest.mark.parametrize("method", IMAGE_ONLY)
def test_image_only_methods_refuse_features(method, data, data_images):
    with pytest.raises(ValueError, match=f"method '{method}' does not accept features; it takes images"):
        estimator(method, 2).fit(data)
    # Flattened images are the same images at predict time.
    est = estimator(method, 2).fit(data_images)
    np.testing.assert_array_equal(est.predict(data_images.reshape(len(data_images), -1)), est.labels_)


ARRAY_API_CHECK = """
from sklearn.utils.estimator_checks import check_array_api_input
from deepclust.models import DeepClusterer, list_methods
for info in list_methods():
    if "features" not in info.input_kinds:
        continue
    est = DeepClusterer(info.name, 3, random_state=0, **info.tiny_preset)
    check_array_api_input(info.name, est, array_namespace="numpy", expect_only_array_outputs=False)
    print(info.name)
"""


def test_array_api_dispatch_with_numpy():
    """Enabling scikit-learn's array API dispatch with numpy input changes nothing."""
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    out = subprocess.run([sys.executable, "-c", ARRAY_API_CHECK], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == FEATURE_METHODS


# -- the model contract and persistence -------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_model_satisfies_the_contract(method, blobs3, blobs3_images):
    blobs3 = pick(method, blobs3, blobs3_images)
    est = estimator(method, scaling="standard").fit(blobs3)
    model = est.model_
    assert isinstance(model, ClusterNetwork)
    rebuilt = build_network(model.spec)
    assert type(rebuilt) is type(model) and rebuilt.spec == model.spec
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    model.eval()
    x = torch.as_tensor(est.scaler_(torch.as_tensor(blobs3[:10])))
    with torch.no_grad():
        z = model.embed(x)
        torch.testing.assert_close(rebuilt.soft_assign(rebuilt.embed(x)), model.soft_assign(z), rtol=0, atol=0)
        torch.testing.assert_close(model.soft_assign(z).sum(1), torch.ones(10), rtol=1e-5, atol=1e-5)
    width = blobs3.shape[1] if est.centers_space_ == "input" else z.shape[1]
    assert est.cluster_centers_.shape == (3, width) and np.isfinite(est.cluster_centers_).all()
    if model.centers is None:  # the mean embedding of each cluster's training samples
        emb = est.transform(blobs3)
        for k in set(est.labels_):
            np.testing.assert_allclose(est.cluster_centers_[k], emb[est.labels_ == k].mean(0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_save_load_predicts_bit_identically(tmp_path, blobs3, blobs3_images, method):
    blobs3 = pick(method, blobs3, blobs3_images)
    est = estimator(method, scaling="standard").fit(blobs3)
    est.save(tmp_path / "m")
    loaded = DeepClusterer.load(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(blobs3), est.predict_proba(blobs3))
    np.testing.assert_array_equal(loaded.predict(blobs3), est.labels_)
    np.testing.assert_array_equal(loaded.transform(blobs3), est.transform(blobs3))
    np.testing.assert_array_equal(loaded.cluster_centers_, est.cluster_centers_)
    assert loaded.get_params() == {**est.get_params(), **est.params_}
    assert loaded.history_ == est.history_ and loaded.centers_space_ == est.centers_space_
    weights, manifest = est.to_bytes()
    again = DeepClusterer.from_bytes(weights, manifest, device="cpu")
    np.testing.assert_array_equal(again.predict_proba(blobs3), est.predict_proba(blobs3))


# -- training: resume, determinism, reuse --------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_resume_from_the_middle_of_each_phase_equals_an_uninterrupted_run(tmp_path, blobs3, blobs3_images, method):
    blobs3 = pick(method, blobs3, blobs3_images)
    recorder = Checkpoints()
    reference = estimator(method, scaling="standard").fit(blobs3, callbacks=[recorder])
    by_phase = {}
    for state in recorder.states:
        by_phase.setdefault(state["phase"], []).append(state)
    # Every phase with steps writes checkpoints (the tiny presets have several epochs in each);
    # k-means, with none, writes none.
    assert set(by_phase) == {h["phase"] for h in reference.history_} - {INIT}
    for phase, states in by_phase.items():
        save_checkpoint(states[len(states) // 2], tmp_path / "ckpt.pt")  # on disk and back, like the worker
        state = load_checkpoint(tmp_path / "ckpt.pt")
        resumed = estimator(method, scaling="standard").fit(blobs3, resume_from=state)
        np.testing.assert_array_equal(resumed.labels_, reference.labels_, err_msg=f"resumed in {phase}")
        np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
        np.testing.assert_array_equal(resumed.predict_proba(blobs3), reference.predict_proba(blobs3))
        assert resumed.history_ == reference.history_


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_result_and_the_global_rng_untouched(blobs3, blobs3_images, method):
    blobs3 = pick(method, blobs3, blobs3_images)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = estimator(method, scaling="standard").fit(blobs3)
    assert torch.rand(1) == expected
    b = estimator(method, scaling="standard").fit(blobs3)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.predict_proba(blobs3), b.predict_proba(blobs3))
    assert a.history_ == b.history_


@pytest.mark.parametrize("method", METHODS)
def test_the_pretrained_autoencoder_is_reused(blobs3, blobs3_images, method):
    blobs3 = pick(method, blobs3, blobs3_images)
    first = estimator(method, scaling="standard").fit(blobs3)
    if first.model_.autoencoder is None:
        with pytest.raises(ValueError, match="has no autoencoder to reuse"):
            estimator(method).fit(blobs3, pretrained=first)
        return
    second = DeepClusterer(method, 3, random_state=1, scaling="standard", **tiny_preset(method)).fit(
        blobs3, pretrained=first)
    assert not [h for h in second.history_ if h["phase"] == PRETRAIN]
    assert second.pretrained_state_.keys() == first.pretrained_state_.keys()
    for k, v in first.pretrained_state_.items():
        assert torch.equal(second.pretrained_state_[k], v)


# -- coverage by registration -----------------------------------------------------------------------
def _method_of(node_id: str) -> tuple[str, str]:
    """``(method, test)`` of a node id of this module, e.g. ``test_x[dec]``, ``test_y[dec-check_z]``."""
    name, param = re.fullmatch(r".*::(\w+)\[([^\]]+)\]", node_id).groups()
    method, _, check = param.partition("-")
    return method, f"{name}[{check}]"


@pytest.mark.timeout(1800)
def test_a_newly_registered_method_is_covered():
    """A method registered outside the library (tests/models/toy_method.py: a softmax head, no
    centres, its own phase, network type and augmentation) gets every test the shipped methods
    get, and passes them."""
    # One thread: tiny networks run faster on one than contending for two.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
           "OMP_NUM_THREADS": "1"}
    pytest_cmd = [sys.executable, "-m", "pytest", str(Path(__file__)), "-p", "toy_method", "-q",
                  "-p", "no:cacheprovider"]
    collected = subprocess.run([*pytest_cmd, "--collect-only"], env=env, capture_output=True, text=True,
                               cwd=ROOT, timeout=300)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    tests: dict[str, set[str]] = {}
    for line in collected.stdout.splitlines():
        if "::" in line and "[" in line:
            method, test = _method_of(line.strip())
            tests.setdefault(method, set()).add(test)
    assert set(tests) == {*METHODS, "toyhead"}
    assert tests["toyhead"] == tests["kmeans"]

    ran = subprocess.run([*pytest_cmd, "-k", "toyhead"], env=env, capture_output=True, text=True, cwd=ROOT,
                         timeout=900)
    assert ran.returncode == 0, ran.stdout[-5000:] + ran.stderr[-2000:]
    assert re.search(rf"\b{len(tests['toyhead'])} passed", ran.stdout), ran.stdout[-2000:]
