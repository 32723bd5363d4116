import json

import numpy as np
import pytest
from safetensors.torch import load as load_tensors

from deepclust.models import DeepClusterer


# Every method's round trip is bit-identical: tests/models/test_contract.py.
def test_save_writes_weights_and_a_json_manifest(tmp_path, blobs, tiny):
    X, _ = blobs
    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(X)
    est.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["manifest.json", "model.safetensors"]
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["method"] == "dec" and manifest["scaler"]["kind"] == "standard"
    assert manifest["architecture"]["type"] == "cluster" and manifest["architecture"]["autoencoder"]["type"] == "dense"
    assert {"torch", "numpy", "scikit-learn"} <= set(manifest["versions"])
    loaded = DeepClusterer.load(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    assert loaded.n_features_in_ == 20


def test_a_manifest_from_before_network_types_still_loads(blobs, tiny):
    X, _ = blobs
    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(X)
    weights, manifest = est.to_bytes()
    old = {k: v for k, v in manifest["architecture"].items() if k != "type"}  # format 1 as first written
    loaded = DeepClusterer.from_bytes(weights, {**manifest, "architecture": old}, device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


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


def test_load_reads_the_services_zip_download_as_it_is(tmp_path, blobs, tiny):
    """The service's download is a zip of the two files; a user loads it without unzipping."""
    import zipfile

    X, _ = blobs
    est = DeepClusterer("dec", 4, random_state=0, scaling="standard", **tiny).fit(X)
    weights, manifest = est.to_bytes()
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as bundle:
        bundle.writestr("model.safetensors", weights)
        bundle.writestr("manifest.json", json.dumps(manifest))
    loaded = DeepClusterer.load(tmp_path / "model.zip", device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize("content, message", [(b"not a zip", "neither a model directory nor a zip"),
                                              (None, "lacks model.safetensors")])
def test_load_says_what_is_wrong_with_a_file_that_is_not_a_model(tmp_path, content, message):
    import zipfile

    path = tmp_path / "model.zip"
    if content is None:
        with zipfile.ZipFile(path, "w") as bundle:
            bundle.writestr("manifest.json", "{}")
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        DeepClusterer.load(path)
    with pytest.raises(FileNotFoundError, match="no such model"):
        DeepClusterer.load(tmp_path / "absent")
