import json

import numpy as np
import pytest
from safetensors.torch import load as load_tensors

from models import DeepClusterer


@pytest.mark.parametrize("method", ["dec", "idec", "kmeans"])
def test_save_load_predicts_bit_identically(tmp_path, blobs, tiny, method):
    X, _ = blobs
    params = {"n_init": 2} if method == "kmeans" else tiny
    est = DeepClusterer(method, 4, random_state=0, scaling="standard", **params).fit(X)
    est.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["manifest.json", "model.safetensors"]
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["method"] == method and manifest["scaler"]["kind"] == "standard"
    assert {"torch", "numpy", "scikit-learn"} <= set(manifest["versions"])

    loaded = DeepClusterer.load(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    np.testing.assert_array_equal(loaded.cluster_centers_, est.cluster_centers_)
    assert loaded.get_params() == {**est.get_params(), **est.params_}
    assert loaded.history_ == est.history_ and loaded.n_features_in_ == 20


def test_bytes_round_trip_carries_the_pretrained_autoencoder(blobs, tiny):
    X, y = blobs
    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(X)
    weights, manifest = est.to_bytes()
    json.dumps(manifest)  # JSON-able as it is
    assert any(k.startswith("pretrained.") for k in load_tensors(weights))
    loaded = DeepClusterer.from_bytes(weights, manifest, device="cpu")
    # A second job reuses the autoencoder: no pretraining epochs in its history.
    reuse = DeepClusterer("idec", 4, random_state=1, scaling="standard", **tiny).fit(X, pretrained=loaded)
    assert not [h for h in reuse.history_ if h["phase"] == "pretrain"]
    for k, v in est.pretrained_state_.items():
        np.testing.assert_array_equal(reuse.pretrained_state_[k].numpy(), v.numpy())


def test_unknown_format_version_is_refused(blobs):
    est = DeepClusterer("kmeans", 4, random_state=0, n_init=1).fit(blobs[0])
    weights, manifest = est.to_bytes()
    with pytest.raises(ValueError, match="unsupported model format_version 99"):
        DeepClusterer.from_bytes(weights, {**manifest, "format_version": 99})
