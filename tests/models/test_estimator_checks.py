"""scikit-learn's own estimator checks, on tiny settings, for each kind of method."""
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

from models import DeepClusterer

SMALL = {"hidden_dims": [16], "embedding_dim": 2, "pretrain_epochs": 2, "pretrain_batch_size": 16,
         "maxiter": 20, "update_interval": 5, "batch_size": 16, "kmeans_n_init": 2}

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
RUN_ELSEWHERE = {"check_array_api_input"}

ESTIMATORS = [
    DeepClusterer("dec", 3, random_state=0, **SMALL),
    DeepClusterer("idec", 3, random_state=0, **SMALL),
    DeepClusterer("kmeans", 3, random_state=0, n_init=2),
]


def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


def _sklearn_checks(one_cluster: bool):
    for est in ESTIMATORS:
        for estimator, check in estimator_checks_generator(est):
            name = _check_name(check)
            if name not in RUN_ELSEWHERE and (name in SETS_ONE_CLUSTER) == one_cluster:
                yield pytest.param(estimator, check, id=f"{estimator.method}-{name}")


@pytest.mark.parametrize("estimator, check", list(_sklearn_checks(one_cluster=False)))
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator, check", list(_sklearn_checks(one_cluster=True)))
def test_checks_that_set_one_cluster_fail_on_that_alone(estimator, check):
    # Some checks let the ValueError through, others re-raise it as an AssertionError when its
    # message is not the one they expect; either way, n_clusters=1 must be the only reason.
    with pytest.raises((ValueError, AssertionError)) as info:
        check(estimator)
    error = info.value if isinstance(info.value, ValueError) else info.value.__cause__
    assert isinstance(error, ValueError) and "n_clusters must be at least 2, got 1" in str(error)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(6, 1, (30, 4))])


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: e.method)
def test_fit_does_not_change_params(est, data):
    est = est.set_params(n_clusters=2)
    before = est.get_params()
    est.fit(data)
    assert est.get_params() == before
    # Fitted state lives in trailing-underscore attributes only.
    public = {k for k in vars(est) if not k.startswith("_")}
    assert public - set(before) == {k for k in public if k.endswith("_")}


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: e.method)
def test_predictions_do_not_depend_on_batching(est, data):
    est = est.set_params(n_clusters=2).fit(data)
    whole = est.predict_proba(data)
    parts = np.concatenate([est.predict_proba(data[i:i + 7]) for i in range(0, len(data), 7)])
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)
    assert (parts.argmax(1) == est.predict(data)).all()
    np.testing.assert_allclose(
        np.concatenate([est.transform(data[i:i + 7]) for i in range(0, len(data), 7)]),
        est.transform(data), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: e.method)
def test_one_feature_fits(est, data):
    est = est.set_params(n_clusters=2).fit(data[:, :1])
    assert est.n_features_in_ == 1
    assert est.predict(data[:, :1]).shape == (len(data),)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: e.method)
def test_1d_input_to_predict_is_an_error(est, data):
    est = est.set_params(n_clusters=2).fit(data)
    with pytest.raises(ValueError, match="Expected 2D array"):
        est.predict(data[0])


ARRAY_API_CHECK = """
from sklearn.utils.estimator_checks import check_array_api_input
from models import DeepClusterer
for method, params in [("dec", SMALL), ("idec", SMALL), ("kmeans", {"n_init": 2})]:
    est = DeepClusterer(method, 3, random_state=0, **params)
    check_array_api_input(method, est, array_namespace="numpy", expect_only_array_outputs=False)
print("checked")
"""


def test_array_api_dispatch_with_numpy():
    """Enabling scikit-learn's array API dispatch with numpy input changes nothing."""
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    out = subprocess.run([sys.executable, "-c", f"SMALL = {SMALL!r}\n" + ARRAY_API_CHECK],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "checked"
