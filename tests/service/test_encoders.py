"""Pretrained image encoders (API 1.2): a small convolutional encoder exported to ONNX here, uploaded,
used by a job on a PNG archive, predict on a PNG, the ONNX download against predict; every refusal."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import onnx
from onnx import TensorProto, helper, numpy_helper

from deepclust.worker.run import run_job

from .conftest import artifacts, upload
from .imagefiles import class_archive, image_bytes, zip_bytes
from .test_bad_input import assert_error

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
