"""Pretrained image encoders (API 1.2): a small convolutional encoder exported to ONNX here, uploaded,
used by a job on a PNG archive, predict on a PNG, the ONNX download against predict; every refusal."""
from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pytest
import onnx
from onnx import TensorProto, helper, numpy_helper

from deepclust.worker.run import run_job

from ..conftest import artifacts, blobs, npy_bytes, upload
from ..imagefiles import class_archive, image_bytes, zip_bytes
from ..http.test_bad_input import assert_error

K, SIZE, N_PER_CLASS = 3, 16, 6
INPUT_SIZE = "20,20"  # the encoder takes 20×20 rgb; the archive holds 16×16 grayscale: preprocessing converts


def tiny_encoder_onnx(dim: int = 8, channels: int = 3) -> bytes:
    """A small convolutional encoder (conv, pooling, linear), exported with torch's exporter."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(channels, 6, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                        nn.Flatten(), nn.Linear(24, dim)).eval()
    example = torch.zeros(2, channels, 20, 20)
    buffer = io.BytesIO()
    with torch.no_grad():
        try:
            torch.onnx.export(net, (example,), buffer, input_names=["images"], output_names=["features"],
                              dynamic_axes={"images": {0: "n"}, "features": {0: "n"}}, opset_version=17,
                              dynamo=False)
        except TypeError:  # an exporter without the TorchScript path
            torch.onnx.export(net, (example,), buffer, input_names=["images"], output_names=["features"],
                              dynamic_shapes=({0: torch.export.Dim("n")},), opset_version=18, dynamo=True,
                              external_data=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def encoder_bytes() -> bytes:
    return tiny_encoder_onnx()


def upload_encoder(api, content: bytes, filename: str = "enc.onnx", **fields):
    data = {"input_size": INPUT_SIZE, "color": "rgb", "mean": "0.5,0.5,0.5", "std": "0.25,0.25,0.25", **fields}
    return api.post("/v1/encoders", files={"file": (filename, content)}, data=data)


# -- hand-made bad models (onnx's helper API) ----------------------------------------------------------

def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _x(name: str = "x", dims=("N", 3, 20, 20)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def _flatten_model(**extra) -> onnx.ModelProto:
    return _model([helper.make_node("Flatten", ["x"], ["y"], axis=1)], [_x()],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1200])], **extra)


def external_data_model() -> bytes:
    weight = numpy_helper.from_array(np.ones((1200, 4), np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="w.bin")
    model = _model([helper.make_node("Flatten", ["x"], ["f"], axis=1), helper.make_node("MatMul", ["f", "w"], ["y"])],
                   [_x()], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [weight])
    return model.SerializeToString()


def custom_domain_model() -> bytes:
    model = _model([helper.make_node("MyOp", ["x"], ["y"], domain="com.example")], [_x()],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    return model.SerializeToString()


def two_inputs_model() -> bytes:
    model = _model([helper.make_node("Add", ["x", "z"], ["s"]), helper.make_node("Flatten", ["s"], ["y"], axis=1)],
                   [_x(), _x("z")], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1200])])
    return model.SerializeToString()


def three_d_output_model() -> bytes:
    shape = numpy_helper.from_array(np.array([-1, 600, 2], np.int64), "shape")
    model = _model([helper.make_node("Reshape", ["x", "shape"], ["y"])], [_x()],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 600, 2])], [shape])
    return model.SerializeToString()


# -- upload, read, list, delete ---------------------------------------------------------------------

def test_upload_read_list_delete(backend, api, encoder_bytes):
    r = upload_encoder(api, encoder_bytes, name="tiny")
    assert r.status_code == 201, r.text
    enc = r.json()
    assert set(enc) == {"id", "name", "input_shape", "output_dim", "sha256", "size_bytes", "created_at"}
    assert enc["id"].startswith("enc_") and enc["name"] == "tiny"
    assert enc["input_shape"] == [3, 20, 20] and enc["output_dim"] == 8
    assert enc["size_bytes"] == len(encoder_bytes)
    assert r.headers["location"] == f"/v1/encoders/{enc['id']}"
    assert api.get(f"/v1/encoders/{enc['id']}").json() == enc
    listed = api.get("/v1/encoders").json()
    assert listed["total"] == 1 and listed["items"] == [enc]
    with backend.client() as other:  # another tenant sees nothing of it
        assert_error(other.get(f"/v1/encoders/{enc['id']}"), 404, "encoder_not_found")
        assert_error(other.delete(f"/v1/encoders/{enc['id']}"), 404, "encoder_not_found")
        assert other.get("/v1/encoders").json()["total"] == 0
    assert f"encoders/{enc['id']}/model.onnx" in artifacts(backend.data_dir)
    assert api.delete(f"/v1/encoders/{enc['id']}").status_code == 204
    assert_error(api.get(f"/v1/encoders/{enc['id']}"), 404, "encoder_not_found")
    assert not any(a.startswith(f"encoders/{enc['id']}") for a in artifacts(backend.data_dir))


@pytest.mark.parametrize("content, fields, status, code", [
    (b"this is not a protobuf", {}, 422, "not_onnx"),
    ("external", {}, 422, "onnx_external_data"),
    ("custom", {}, 422, "onnx_custom_operator"),
    ("two_inputs", {}, 422, "onnx_inputs"),
    ("three_d", {}, 422, "onnx_output_shape"),
    ("tiny", {"input_size": "20"}, 422, "invalid_encoder_options"),
    ("tiny", {"color": "cmyk"}, 422, "invalid_encoder_options"),
    ("tiny", {"mean": "0.5,0.5"}, 422, "invalid_encoder_options"),
    ("tiny", {"std": "0,1,1"}, 422, "invalid_encoder_options"),
    ("tiny", {"color": "grayscale", "mean": "", "std": ""}, 422, "invalid_encoder_options"),  # the graph takes 3 channels
    ("tiny", {"output_name": "nope"}, 422, "onnx_output_shape"),
])
def test_refusals_store_nothing(backend, api, encoder_bytes, content, fields, status, code):
    made = {"external": external_data_model, "custom": custom_domain_model, "two_inputs": two_inputs_model,
            "three_d": three_d_output_model}
    if isinstance(content, str):
        content = encoder_bytes if content == "tiny" else made[content]()
    before = artifacts(backend.data_dir)
    assert_error(upload_encoder(api, content, **fields), status, code)
    assert api.get("/v1/encoders").json()["total"] == 0
    assert [a for a in artifacts(backend.data_dir) if a not in before] == []


def test_over_the_size_limit_is_refused_before_the_body_is_read(backend, encoder_bytes):
    app = backend.app(max_encoder_bytes=1000)
    with backend.client(app) as api:
        error = assert_error(upload_encoder(api, encoder_bytes), 413, "too_large")
        assert "DEEPCLUST_MAX_ENCODER_BYTES" in error["message"]
        assert api.get("/v1/encoders").json()["total"] == 0


# -- jobs on an encoder, predict from images -----------------------------------------------------------

@pytest.fixture(scope="module")
def trained(backend, encoder_bytes):
    members, pixels = class_archive(N_PER_CLASS, K, SIZE)
    with backend.client() as api:
        dataset = upload(api, "shapes.zip", zip_bytes(members)).json()
        enc = upload_encoder(api, encoder_bytes, name="tiny").json()
        r = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "kmeans", "n_clusters": K,
                                      "params": {"n_init": 3}, "encoder": enc["id"]})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["encoder"] == enc["id"]
        assert run_job(job["id"], backend.settings) == "succeeded"
        job = api.get(f"/v1/jobs/{job['id']}").json()
        labels = np.asarray([i["label"] for i in api.get(f"/v1/jobs/{job['id']}/labels",
                                                           params={"limit": 1000}).json()["items"]])
        yield api, dataset, enc, job, pixels, labels


def test_a_job_embeds_the_images_then_clusters_the_embeddings(backend, trained, encoder_bytes):
    api, dataset, enc, job, pixels, labels = trained
    assert job["status"] == "succeeded" and job["encoder"] == enc["id"]
    assert f"datasets/{dataset['id']}/embeddings/{enc['id']}.npy" in artifacts(backend.data_dir)
    log = api.get(f"/v1/jobs/{job['id']}/logs").text
    assert "encode begins" in log and "encoded" in log and "CPUExecutionProvider" in log
    model = api.get(f"/v1/models/{job['model_id']}").json()
    assert model["sample_shape"] == [8]  # the clustering model takes the encoder's D-vectors
    # The embeddings are what the encoder gives on the preprocessed images (onnxruntime directly).
    import onnxruntime as ort
    x = np.repeat(pixels[:, None].astype(np.float32), 3, axis=1) / 255.0  # grayscale -> rgb, [0, 1]
    import torch
    x = torch.nn.functional.interpolate(torch.from_numpy(x), size=(20, 20), mode="bilinear",
                                        align_corners=False).numpy()
    x = (x - 0.5) / 0.25
    direct = ort.InferenceSession(encoder_bytes, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    kept = np.load(backend.data_dir / "artifacts" / "datasets" / dataset["id"] / "embeddings" / f"{enc['id']}.npy")
    np.testing.assert_allclose(kept, direct, rtol=1e-4, atol=1e-4)
    assert len(set(labels.tolist())) >= 2


def test_a_second_job_reuses_the_embeddings(backend, trained):
    api, dataset, enc, _, _, _ = trained
    job = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "kmeans", "n_clusters": 2,
                                     "params": {"n_init": 2}, "encoder": enc["id"]}).json()
    assert run_job(job["id"], backend.settings) == "succeeded"
    log = api.get(f"/v1/jobs/{job['id']}/logs").text
    assert "reusing the embeddings" in log and "encoded" not in log.split("reusing")[1]


def test_predict_on_a_png_runs_the_encoder_first(trained):
    api, _, _, job, pixels, labels = trained
    for i in (0, 1, 2, 4):
        r = api.post(f"/v1/models/{job['model_id']}/predict", files={"file": (f"x{i}.png", image_bytes(pixels[i]))})
        assert r.status_code == 200, r.text
        assert r.json()["labels"] == [int(labels[i])]
    # an archive, and JSON instances shaped like the dataset's images
    members = [(f"a/{i}.png", image_bytes(pixels[i])) for i in range(6)]
    r = api.post(f"/v1/models/{job['model_id']}/predict", files={"file": ("few.zip", zip_bytes(members))})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == labels[:6].tolist()
    r = api.post(f"/v1/models/{job['model_id']}/predict",
                 json={"instances": pixels[:3, None].astype(float).tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == labels[:3].tolist()


def test_jobs_on_an_encoder_are_refused_where_they_do_not_fit(backend, trained, encoder_bytes):
    api, dataset, enc, _, _, _ = trained
    X, _ = blobs()
    features = upload(api, "x.npy", npy_bytes(X)).json()
    body = {"dataset_id": features["id"], "method": "kmeans", "n_clusters": 3, "encoder": enc["id"]}
    assert_error(api.post("/v1/jobs", json=body), 422, "encoder_not_applicable")
    body = {"dataset_id": dataset["id"], "method": "dcec", "n_clusters": 3, "encoder": enc["id"]}
    assert_error(api.post("/v1/jobs", json=body), 422, "encoder_not_applicable")
    body = {"dataset_id": dataset["id"], "method": "kmeans", "n_clusters": 3, "encoder": "enc_nope"}
    assert_error(api.post("/v1/jobs", json=body), 404, "encoder_not_found")
    with backend.client() as other:  # another tenant's encoder is not found either
        mine = upload(other, "shapes.zip", zip_bytes(class_archive(2, K, SIZE)[0])).json()
        body = {"dataset_id": mine["id"], "method": "kmeans", "n_clusters": 3, "encoder": enc["id"]}
        assert_error(other.post("/v1/jobs", json=body), 404, "encoder_not_found")
    methods = {m["name"]: m for m in api.get("/v1/methods").json()["items"]}
    assert methods["kmeans"]["accepts_encoder"] and methods["dec"]["accepts_encoder"]
    assert not methods["dcec"]["accepts_encoder"]


def test_an_encoder_in_use_cannot_be_deleted(backend, encoder_bytes):
    with backend.client() as api:
        dataset = upload(api, "shapes.zip", zip_bytes(class_archive(3, K, SIZE)[0])).json()
        enc = upload_encoder(api, encoder_bytes).json()
        job = api.post("/v1/jobs", json={"dataset_id": dataset["id"], "method": "kmeans", "n_clusters": K,
                                         "encoder": enc["id"]}).json()
        error = assert_error(api.delete(f"/v1/encoders/{enc['id']}"), 409, "encoder_in_use")
        assert error["details"]["job_ids"] == [job["id"]]
        assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code in (200, 202)
        assert api.delete(f"/v1/encoders/{enc['id']}").status_code == 204


# -- the model leaves the service with its encoder -------------------------------------------------------

def test_the_onnx_download_is_one_graph_that_predicts_like_the_service(trained):
    import onnxruntime as ort

    api, _, _, job, pixels, labels = trained
    r = api.get(f"/v1/models/{job['model_id']}/download", params={"format": "onnx"})
    assert r.status_code == 200, r.text
    model = onnx.load_model_from_string(r.content)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["pixels"]
    session = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])
    x = pixels[:, None].astype(np.float32)  # 8-bit pixel values, shaped like the dataset's images
    proba, embedding = session.run(["probabilities", "embedding"], {"pixels": x})
    served = api.post(f"/v1/models/{job['model_id']}/predict",
                      json={"instances": x.tolist()}, params={"embeddings": "true"}).json()
    assert proba.argmax(1).tolist() == served["labels"] == labels.tolist()
    np.testing.assert_allclose(proba, served["probabilities"], rtol=1e-4, atol=1e-5)


def test_the_zip_carries_the_encoder_and_round_trips_through_import(backend, trained):
    api, _, _, job, pixels, labels = trained
    r = api.get(f"/v1/models/{job['model_id']}/download")
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as bundle:
        assert sorted(bundle.namelist()) == ["encoder.onnx", "manifest.json", "model.safetensors"]
        import json
        spec = json.loads(bundle.read("manifest.json"))["encoder"]
        assert spec["input_shape"] == [3, 20, 20] and spec["image_shape"] == [1, SIZE, SIZE]
        assert spec["mean"] == [0.5, 0.5, 0.5] and spec["std"] == [0.25, 0.25, 0.25]
    with backend.client() as other:  # imported by another tenant: predicts from images alike
        imported = other.post("/v1/models", files={"file": ("m.zip", r.content)})
        assert imported.status_code == 201, imported.text
        model_id = imported.json()["id"]
        for i in (0, 1, 2):
            p = other.post(f"/v1/models/{model_id}/predict", files={"file": (f"{i}.png", image_bytes(pixels[i]))})
            assert p.status_code == 200, p.text
            assert p.json()["labels"] == [int(labels[i])]
        again = other.get(f"/v1/models/{model_id}/download")
        with zipfile.ZipFile(io.BytesIO(again.content)) as bundle:
            assert "encoder.onnx" in bundle.namelist()
        # a bundle with a broken encoder is refused like an upload
        members = {}
        with zipfile.ZipFile(io.BytesIO(r.content)) as bundle:
            members = {n: bundle.read(n) for n in bundle.namelist()}
        members["encoder.onnx"] = custom_domain_model()
        bad = other.post("/v1/models", files={"file": ("bad.zip", zip_bytes(list(members.items())))})
        assert_error(bad, 422, "onnx_custom_operator")


# -- the client and the CLI against a running `deepclust serve` -------------------------------------------

def test_client_and_cli(served, encoder_bytes, tmp_path):
    import json

    from typer.testing import CliRunner

    from deepclust.app.cli import app
    from deepclust.app.client import Client, Conflict

    members, pixels = class_archive(4, K, SIZE)
    archive = tmp_path / "shapes.zip"
    archive.write_bytes(zip_bytes(members))
    onnx_file = tmp_path / "tiny.onnx"
    onnx_file.write_bytes(encoder_bytes)
    with Client(served.url, key=served.key) as client:
        enc = client.upload_encoder(encoder_bytes, (20, 20), "rgb", mean=[0.5] * 3, std=[0.25] * 3, name="tiny")
        assert enc["output_dim"] == 8 and enc["input_shape"] == [3, 20, 20]
        assert enc["id"] in [e["id"] for e in client.list_encoders()]
        dataset = client.upload_dataset(archive)
        job = client.start_job(dataset["id"], "kmeans", K, params={"n_init": 2}, encoder=enc["id"])
        assert job.resource["encoder"] == enc["id"]
        try:
            client.delete_encoder(enc["id"])  # refused while queued or running, unless it has already ended
        except Conflict:
            pass
        job.wait(progress=False, timeout=300)
        assert job.status == "succeeded"
        prediction = client.predict(job.model_id, pixels[:3, None].astype(np.float32))
        assert prediction.labels.tolist() == job.labels()[:3].tolist()

    runner = CliRunner()
    env = {"DEEPCLUST_API": served.url, "DEEPCLUST_KEY": served.key, "COLUMNS": "200"}

    def cli(*args: str, code: int = 0):
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    made = json.loads(cli("encoders", "upload", str(onnx_file), "--input-size", "20,20", "--color", "rgb",
                          "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--json").stdout)
    assert made["id"].startswith("enc_") and made["output_dim"] == 8
    assert made["id"] in cli("encoders", "list").stdout
    started = json.loads(cli("jobs", "start", dataset["id"], "-m", "kmeans", "-k", "2", "--encoder", made["id"],
                             "--json").stdout)
    assert started["encoder"] == made["id"]
    cli("encoders", "upload", str(archive), "--input-size", "20,20", "--color", "rgb", code=1)  # not ONNX
    with Client(served.url, key=served.key) as client:
        client.job(started["id"]).wait(progress=False, timeout=300)
    cli("encoders", "delete", made["id"], "--yes")
    assert made["id"] not in cli("encoders", "list").stdout


# -- the dashboard's job form offers the tenant's encoders for an image dataset -------------------------------

def test_the_job_form_offers_encoders_for_images(served, encoder_bytes):
    from ..web.conftest import CHROMIUM, use_key  # the browser tests' helpers

    import httpx
    from playwright.sync_api import sync_playwright

    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.key}"}, timeout=60) as client:
        enc = client.post("/v1/encoders", files={"file": ("tiny.onnx", encoder_bytes)},
                          data={"input_size": INPUT_SIZE, "color": "rgb", "name": "tiny-browser"}).json()
        images = client.post("/v1/datasets", files={"file": ("few.zip", zip_bytes(class_archive(3, K, SIZE)[0]))}).json()
        features = client.post("/v1/datasets", files={"file": ("x.npy", npy_bytes(blobs()[0]))}).json()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(base_url=served.url).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(60_000)
        use_key(page, served.key)
        page.goto(f"/jobs/new?dataset_id={features['id']}")
        page.wait_for_selector("#job-method option", state="attached")
        assert page.is_hidden("#job-encoder-label")  # features: nothing to encode
        page.select_option("#job-dataset", images["id"])
        assert page.is_visible("#job-encoder-label")
        assert "dcec" in page.locator("#job-method option").all_text_contents()
        page.select_option("#job-encoder", enc["id"])
        methods = page.locator("#job-method option").all_text_contents()
        assert "kmeans" in methods and "dcec" not in methods  # only methods that take feature vectors
        page.select_option("#job-method", "kmeans")
        page.fill("#job-n-clusters", "3")
        page.click("#job-submit")
        page.wait_for_url(lambda url: "/jobs/job_" in url)
        job_id = page.url.rsplit("/", 1)[1]
        browser.close()
        assert not errors, errors
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.key}"}, timeout=60) as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["encoder"] == enc["id"]


def test_the_encode_phase_reports_batches_and_stops_on_cancel(backend, encoder_bytes):
    from types import SimpleNamespace

    from deepclust.app.core.db import engine_for, new_session
    from deepclust.app.core.storage import store_for
    from deepclust.app.core.tables import Dataset
    from deepclust.models import TrainingCancelled
    from deepclust.worker.encode import ENCODE, encode

    with backend.client() as api:
        dataset = upload(api, "shapes.zip", zip_bytes(class_archive(3, K, SIZE)[0])).json()
        enc = upload_encoder(api, encoder_bytes).json()
    engine = engine_for(backend.settings.database_url)
    with new_session(engine) as session:
        row = session.get(Dataset, dataset["id"])
        session.expunge(row)

    class Reporter:
        def __init__(self, stop_after: int):
            self.progress, self.phases, self.flushes, self.asked, self.stop_after = {}, [], [], 0, stop_after

        def enter_phase(self, phase, epochs=1):
            self.phases.append((phase, epochs))

        def flush(self, force=False):
            self.flushes.append(dict(self.progress))

        def should_stop(self):
            self.asked += 1
            return self.asked >= self.stop_after

    settings = backend.settings.model_copy(update={"encode_batch_size": 2, "progress_interval_seconds": 0})
    job = SimpleNamespace(id="job_test", encoder_id=enc["id"])
    store = store_for(backend.data_dir)
    reporter = Reporter(stop_after=2)
    with pytest.raises(TrainingCancelled):
        encode(job, row, engine, store, reporter, settings, "cpu")
    assert reporter.phases == [(ENCODE, 5)]  # 9 images, 2 per batch
    assert [f["epoch"] for f in reporter.flushes] == [1, 2] and reporter.flushes[-1]["epochs"] == 5
    assert f"datasets/{dataset['id']}/embeddings/{enc['id']}.npy" not in artifacts(backend.data_dir)
    done = encode(job, row, engine, store, Reporter(stop_after=99), settings, "cpu")
    assert done.X.shape == (9, 8)
    assert f"datasets/{dataset['id']}/embeddings/{enc['id']}.npy" in artifacts(backend.data_dir)


    class SlowReporter(Reporter):  # batches far quicker than the progress pace: cancel is still asked
        def flush(self, force=False):
            super().flush(force)
            time.sleep(0.03)

    paced = settings.model_copy(update={"progress_interval_seconds": 0.05})
    store.delete_prefix(f"datasets/{dataset['id']}/embeddings")  # encode again, not reuse
    reporter = SlowReporter(stop_after=1)
    with pytest.raises(TrainingCancelled, match="after batch [23] of 5"):  # at the pace, not only after the last
        encode(job, row, engine, store, reporter, paced, "cpu")


def test_the_plots_of_a_job_on_an_encoder(trained):
    api, _, _, job, _, _ = trained
    for name in ("embedding", "examples", "sizes"):
        r = api.get(f"/v1/jobs/{job['id']}/plots/{name}.json")
        assert r.status_code == 200, r.text
