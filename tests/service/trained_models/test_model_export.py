"""Models out and in: the zip that DeepClusterer.load reads, the ONNX export checked against
PyTorch with onnxruntime, and importing a bundle (with every refusal of a bad one)."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import onnxruntime as ort
import pytest

from deepclust.models import DeepClusterer
from deepclust.worker.run import run_job

from ..conftest import TINY_DEC, blobs, npy_bytes, upload
from ..http.test_bad_input import assert_error

N, D, K = 90, 6, 3


@pytest.fixture(scope="module")
def trained(backend):
    """A DEC job on uint8 data, so the model carries a real preprocessing step (divide by 255)."""
    X, y = blobs(N, D, K)
    X8 = np.clip((X - X.min()) / (X.max() - X.min()) * 255, 0, 255).astype(np.uint8)
    with backend.client() as api:
        dataset = upload(api, "pixels.npy", npy_bytes(X8)).json()
        job = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "dec", "n_clusters": K,
                                         **TINY_DEC}).json()
        assert run_job(job["id"], backend.settings) == "succeeded"
        yield api, api.get(f"/v1/jobs/{job['id']}").json(), X8.astype(np.float32)


def api_predict(api, model_id: str, X: np.ndarray, embeddings: bool = False) -> dict:
    r = api.post(f"/v1/models/{model_id}/predict", params={"embeddings": str(embeddings).lower()},
                 json={"instances": X.tolist()})
    assert r.status_code == 200, r.text
    return r.json()


def unzip(content: bytes, where) -> None:
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        assert sorted(bundle.namelist()) == ["manifest.json", "model.safetensors"]
        bundle.extractall(where)


def test_the_zip_loads_with_the_library_and_predicts_the_same(trained, tmp_path):
    api, job, X = trained
    r = api.get(f"/v1/models/{job['model_id']}/download")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert f'filename="{job["model_id"]}.zip"' in r.headers["content-disposition"]
    unzip(r.content, tmp_path)
    model = DeepClusterer.load(tmp_path, device="cpu")
    served = api_predict(api, job["model_id"], X)
    assert model.predict(X).tolist() == served["labels"]
    np.testing.assert_allclose(model.predict_proba(X), served["probabilities"], atol=1e-6)
    assert (model.method, model.n_clusters, model.scaler_.kind) == ("dec", K, "divide255")


def test_onnx_export_matches_pytorch(trained):
    api, job, X = trained
    r = api.get(f"/v1/models/{job['model_id']}/download", params={"format": "onnx"})
    assert r.status_code == 200, r.text
    session = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["probabilities", "embedding"]
    probabilities, embedding = session.run(None, {"input": X})
    served = api_predict(api, job["model_id"], X, embeddings=True)
    # Raw pixel values go in: the /255 scaling is inside the graph.
    np.testing.assert_allclose(probabilities, served["probabilities"], atol=1e-5)
    np.testing.assert_allclose(embedding, served["embeddings"], atol=1e-4)
    assert probabilities.argmax(1).tolist() == served["labels"]
    one, _ = session.run(None, {"input": X[:1]})  # any batch size
    np.testing.assert_allclose(one, probabilities[:1], atol=1e-6)


def test_a_downloaded_model_imports_and_predicts_like_the_original(trained):
    api, job, X = trained
    content = api.get(f"/v1/models/{job['model_id']}/download").content
    r = api.post("/v1/models", files={"file": ("model.zip", content, "application/zip")})
    assert r.status_code == 201, r.text
    imported = r.json()
    assert r.headers["Location"] == f"/v1/models/{imported['id']}" and imported["id"] != job["model_id"]
    assert (imported["job_id"], imported["dataset_id"], imported["metrics"]) == (None, None, None)
    assert (imported["method"], imported["n_clusters"], imported["sample_shape"]) == ("dec", K, [D])
    assert imported["pretrain"]["epochs"] == TINY_DEC["pretrain"]["epochs"]
    assert api.get(f"/v1/models/{imported['id']}").json() == imported
    assert api_predict(api, imported["id"], X) == api_predict(api, job["model_id"], X)
    assert api.delete(f"/v1/models/{imported['id']}").status_code == 204


def test_a_model_trained_with_the_library_imports(api, tmp_path):
    X, _ = blobs(60, 4, 3, seed=1)
    est = DeepClusterer("idec", 3, random_state=0, device="cpu", scaling="standard", hidden_dims=[8],
                        embedding_dim=2, pretrain_epochs=1, maxiter=10, kmeans_n_init=1).fit(X)
    est.save(tmp_path / "mine")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:  # zipped as a folder, as people do
        for name in ("model.safetensors", "manifest.json"):
            bundle.write(tmp_path / "mine" / name, f"mine/{name}")
    r = api.post("/v1/models", files={"file": ("mine.zip", buffer.getvalue())})
    assert r.status_code == 201, r.text
    served = api_predict(api, r.json()["id"], X)
    assert served["labels"] == est.predict(X).tolist()
    np.testing.assert_allclose(served["probabilities"], est.predict_proba(X), atol=1e-6)


def zipped(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def test_bad_bundles_are_refused_and_nothing_is_stored(trained):
    api, job, _ = trained
    with zipfile.ZipFile(io.BytesIO(api.get(f"/v1/models/{job['model_id']}/download").content)) as good:
        weights, manifest = good.read("model.safetensors"), json.loads(good.read("manifest.json"))
    before = api.get("/v1/models").json()["total"]

    def refused(content: bytes, status: int, code: str, says: str):
        error = assert_error(api.post("/v1/models", files={"file": ("m.zip", content)}), status, code)
        assert says in error["message"], error

    huge = json.loads(json.dumps(manifest))
    huge["architecture"]["autoencoder"]["hidden_dims"] = [100_000, 100_000]
    unknown = {**manifest, "method": "spectral"}
    refused(b"not a zip at all", 415, "unsupported_media_type", "zip of model.safetensors")
    refused(zipped(**{"model.safetensors": weights}), 422, "invalid_model_bundle", "lacks manifest.json")
    refused(zipped(**{"model.safetensors": weights, "manifest.json": b"{oops"}), 422, "invalid_model_bundle",
            "not JSON")
    refused(zipped(**{"model.safetensors": weights, "manifest.json": json.dumps(huge).encode()}), 422,
            "invalid_model_bundle", "larger than its weights")
    refused(zipped(**{"model.safetensors": b"\x00" * len(weights), "manifest.json": json.dumps(manifest).encode()}), 422,
            "invalid_model_bundle", "does not rebuild")
    refused(zipped(**{"model.safetensors": weights, "manifest.json": json.dumps(unknown).encode()}), 422,
            "invalid_model_bundle", "spectral")
    assert_error(api.post("/v1/models", files={"other": ("m.zip", b"x")}), 400, "malformed_request")
    assert api.get("/v1/models").json()["total"] == before


def _good_bundle(api, job) -> tuple[bytes, dict]:
    with zipfile.ZipFile(io.BytesIO(api.get(f"/v1/models/{job['model_id']}/download").content)) as good:
        return good.read("model.safetensors"), json.loads(good.read("manifest.json"))


def test_a_deeply_nested_manifest_is_refused_before_it_is_decoded(trained):
    api, job, _ = trained
    weights, _ = _good_bundle(api, job)
    deep = b"[" * 100_000 + b"]" * 100_000
    error = assert_error(api.post("/v1/models", files={"file": ("m.zip", zipped(**{
        "model.safetensors": weights, "manifest.json": deep}))}), 422, "invalid_model_bundle")
    assert "100000 levels" in error["message"]


def test_every_declared_dimension_is_checked_before_a_network_is_built(trained):
    """A negative width once passed the size check (548 MB allocated before the 422); now every
    dimension is positive and bounded, and the network's tensors must match the weights' header."""
    api, job, _ = trained
    weights, manifest = _good_bundle(api, job)

    def refused(architecture_change: dict, says: str):
        bad = json.loads(json.dumps(manifest))
        bad["architecture"]["autoencoder"].update(architecture_change)
        error = assert_error(api.post("/v1/models", files={"file": ("m.zip", zipped(**{
            "model.safetensors": weights, "manifest.json": json.dumps(bad).encode()}))}), 422, "invalid_model_bundle")
        assert says in error["message"], error
        return error

    error = refused({"hidden_dims": [12000, 12000, -12000]}, "from 1 to")
    assert error["details"]["field"] == "architecture.autoencoder.hidden_dims[2]"
    refused({"hidden_dims": [60000, 60000, 1]}, "larger than its weights")
    refused({"hidden_dims": [0]}, "from 1 to")
    refused({"hidden_dims": list(range(1, 100))}, "at most 64")
    refused({"embedding_dim": 2**70}, "from 1 to")
    # The same number of parameters as the weights hold, in other shapes: the header says no.
    ae = manifest["architecture"]["autoencoder"]
    refused({"hidden_dims": ae["hidden_dims"][::-1]} if ae["hidden_dims"] != ae["hidden_dims"][::-1] else
            {"input_dim": ae["input_dim"] + 1}, "weights")


def test_non_finite_weights_unknown_params_and_scalings_are_refused(trained):
    from safetensors.torch import load as load_tensors
    from safetensors.torch import save as save_tensors

    api, job, _ = trained
    weights, manifest = _good_bundle(api, job)
    before = api.get("/v1/models").json()["total"]

    def post(weights_: bytes, manifest_: dict):
        return api.post("/v1/models", files={"file": ("m.zip", zipped(**{
            "model.safetensors": weights_, "manifest.json": json.dumps(manifest_).encode()}))})

    nan = {k: (v * float("nan") if v.is_floating_point() else v) for k, v in load_tensors(weights).items()}
    assert "NaN" in assert_error(post(save_tensors(nan), manifest), 422, "invalid_model_bundle")["message"]
    unknown = {**manifest, "params": {**manifest["params"], "backdoor": 1}}
    assert "backdoor" in assert_error(post(weights, unknown), 422, "invalid_model_bundle")["message"]
    out_of_range = {**manifest, "params": {**manifest["params"], "alpha": -5}}
    assert "alpha" in assert_error(post(weights, out_of_range), 422, "invalid_model_bundle")["message"]
    scaling = {**manifest, "scaling": "os.system"}
    assert "scaling" in assert_error(post(weights, scaling), 422, "invalid_model_bundle")["message"]
    scaler = {**manifest, "scaler": {**manifest["scaler"], "kind": "eval"}}
    assert "scaler" in assert_error(post(weights, scaler), 422, "invalid_model_bundle")["message"]
    assert api.get("/v1/models").json()["total"] == before


def test_a_bundle_with_too_many_members_is_refused_before_zipfile_lists_them(trained, monkeypatch):
    api, job, _ = trained
    weights, manifest = _good_bundle(api, job)
    members = {"model.safetensors": weights, "manifest.json": json.dumps(manifest).encode(),
               **{f"pad/{i}": b"" for i in range(100)}}
    content = zipped(**members)

    def listing(*_args, **_kwargs):
        raise AssertionError("zipfile read the whole central directory")

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", listing)
    error = assert_error(api.post("/v1/models", files={"file": ("m.zip", content)}), 413, "too_many_members")
    assert error["details"]["limit"] == 64
