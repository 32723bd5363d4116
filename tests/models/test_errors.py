"""Bad input fails fast with a message that says what is wrong."""
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from deepclust.models import DeepClusterer, InvalidParams, get_method

X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)


@pytest.mark.parametrize("bad,message", [
    (np.where(np.eye(40, 5, dtype=bool), np.nan, X), "NaN"),
    (np.where(np.eye(40, 5, dtype=bool), np.inf, X), "infinity"),
    (X[:, 0], "Expected 2D array"),
    (X[:1], "minimum of 2 is required"),
    (np.empty((0, 5)), "minimum of 2 is required"),
    (np.array([["a", "b"], ["c", "d"]]), "could not convert|dtype"),
])
def test_bad_training_data(bad, message):
    with pytest.raises(ValueError, match=message):
        DeepClusterer("kmeans", 2).fit(bad)


@pytest.mark.parametrize("k,message", [
    (1, "n_clusters must be at least 2, got 1"),
    (0, "n_clusters must be at least 2, got 0"),
    (41, "n_clusters=41 is more than n_samples=40"),
    (2.5, "n_clusters must be an integer"),
    (True, "n_clusters must be an integer"),
])
def test_bad_n_clusters(k, message):
    with pytest.raises(ValueError, match=message):
        DeepClusterer("dec", k).fit(X)


def test_unknown_param_names_the_allowed_ones():
    with pytest.raises(InvalidParams) as err:
        DeepClusterer("dec", 3, gama=0.1).fit(X)
    assert err.value.errors[0]["param"] == "gama"
    assert "allowed:" in err.value.errors[0]["message"] and "update_interval" in err.value.errors[0]["message"]
    assert "gama" in str(err.value)


def test_every_bad_param_is_reported_at_once():
    with pytest.raises(InvalidParams) as err:
        DeepClusterer("idec", 3, gamma=-1, pretrain_epochs="many", init="he").fit(X)
    assert sorted(e["param"] for e in err.value.errors) == ["gamma", "init", "pretrain_epochs"]


def test_validate_fills_defaults_from_the_paper():
    info = get_method("idec")
    params = info.validate({"gamma": 0.2})
    assert params["gamma"] == 0.2 and params["update_interval"] == 140 and params["hidden_dims"] == [500, 500, 2000]
    assert info.params_schema["properties"]["gamma"]["minimum"] == 0


def test_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown method 'deck'; known methods: .*dec.*idec.*kmeans"):
        DeepClusterer("deck", 2).fit(X)
    with pytest.raises(KeyError, match="known methods"):
        get_method("deck")


def test_bad_device_and_random_state():
    with pytest.raises(ValueError, match="unknown device"):
        DeepClusterer("kmeans", 2, device="tpu").fit(X)
    with pytest.raises(ValueError, match="random_state must be"):
        DeepClusterer("kmeans", 2, random_state="zero").fit(X)


def test_bad_scaling():
    with pytest.raises(ValueError, match="unknown scaling 'log'"):
        DeepClusterer("kmeans", 2, scaling="log").fit(X)


def test_predict_before_fit_and_with_wrong_width():
    est = DeepClusterer("kmeans", 2)
    with pytest.raises(NotFittedError):
        est.predict(X)
    est.fit(X)
    with pytest.raises(ValueError, match="X has 4 features, but DeepClusterer is expecting 5 features"):
        est.predict(X[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        est.predict(np.full((2, 5), np.nan))


def test_pretrained_that_cannot_be_reused(tiny):
    with pytest.raises(ValueError, match="no autoencoder to reuse"):
        DeepClusterer("kmeans", 2).fit(X, pretrained=DeepClusterer("kmeans", 2).fit(X))
    small = DeepClusterer("dec", 2, random_state=0, **{**tiny, "maxiter": 5, "pretrain_epochs": 1}).fit(X)
    with pytest.raises(ValueError, match="pretrained autoencoder does not fit this model"):
        DeepClusterer("dec", 2, **{**tiny, "embedding_dim": 3}).fit(X, pretrained=small)
