"""What the OpenAPI document says about the requests the server refuses.

A held-out probe found six request shapes that passed the document's schemas and were then
refused by the server. Where the schema language can say it (`not`, `additionalProperties`,
`contentMediaType`), the document now says it, and a validator built from the document rejects
the shape; where it cannot (an integer-valued float, a file name's extension) or where our schema
checker cannot follow it (labels given twice: see app/datasets/endpoints.py), the field's
description says it. Either way the server refuses the shape with its 4xx.
"""
from __future__ import annotations

import io
import zipfile

import jsonschema_rs
import numpy as np
import pytest

from ..conftest import TINY_DEC, blobs, npy_bytes, upload


@pytest.fixture
def document(api) -> dict:
    return api.get("/openapi.json").json()


@pytest.fixture
def dataset(api) -> str:
    return upload(api, "blobs.npy", npy_bytes(blobs(60, 4)[0])).json()["id"]


def valid(document: dict, schema: dict, instance: dict) -> bool:
    """``instance`` against ``schema``, its $refs resolved in the document."""
    return jsonschema_rs.validator_for({**schema, "components": document["components"]}).is_valid(instance)


def json_body(document: dict, path: str) -> dict:
    return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def multipart_body(document: dict, path: str) -> dict:
    return document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]


def test_a_sweep_with_seeds_and_restarts(api, document, dataset):
    body = {"dataset_id": dataset, "method": "dec", **TINY_DEC, "n_clusters": [2, 3]}
    schema = json_body(document, "/v1/sweeps")
    assert valid(document, schema, {**body, "seeds": [0, 1]})
    assert valid(document, schema, {**body, "n_restarts": 2, "seeds": None})
    assert not valid(document, schema, {**body, "seeds": [0, 1], "n_restarts": 2})
    response = api.post("/v1/sweeps", json={**body, "seeds": [0, 1], "n_restarts": 2})
    assert response.status_code == 422 and "not both" in response.text


def test_a_runtime_limit_with_a_fraction(api, document, dataset):
    schema = document["components"]["schemas"]["JobCreate"]["properties"]["max_runtime_s"]
    assert "1885.0 is refused" in schema["description"]
    body = {"dataset_id": dataset, "method": "dec", "n_clusters": 2, **TINY_DEC}
    assert api.post("/v1/jobs", json={**body, "max_runtime_s": 1885.0}).status_code == 422
    assert api.post("/v1/jobs", json={**body, "max_runtime_s": 1885}).status_code == 202


def test_labels_given_as_a_file_and_as_a_column(api, document):
    properties = multipart_body(document, "/v1/datasets")["properties"]  # said in words: see app/datasets/endpoints.py
    assert "Not with label_column" in properties["labels"]["description"]
    assert "Not with a labels file" in properties["label_column"]["description"]
    csv = b"a,y\n" + b"".join(f"{i % 7}.5,{i % 2}\n".encode() for i in range(20))
    response = upload(api, "x.csv", csv, label_column="y", labels=("y.txt", b"0\n1\n" * 10))
    assert response.status_code == 422 and response.json()["error"]["code"] == "labels_given_twice"


@pytest.mark.parametrize("path", ["/v1/models/{model_id}/predict", "/v1/models", "/v1/datasets"])
def test_unknown_multipart_fields(document, path):
    schema = multipart_body(document, path)
    assert schema["additionalProperties"] is False
    assert not valid(document, schema, {"file": "x.npy", "colour": "rgb"})


def test_unknown_multipart_fields_are_refused(api):
    response = upload(api, "x.npy", npy_bytes(blobs(30, 3)[0]), colour="rgb")
    assert response.status_code == 400 and "colour" in response.text, response.text


def test_a_file_name_without_an_extension(api, document):
    description = multipart_body(document, "/v1/datasets")["properties"]["file"]["description"]
    assert "without an extension" in description
    response = upload(api, "table", b"1,2,3\n4,5,6\n" * 10)
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_format"
    ok = upload(api, "array", npy_bytes(np.ones((20, 3), np.float32)))  # binary formats are told by their bytes
    assert ok.status_code == 201, ok.text


def test_a_model_that_is_not_a_zip(api, document):
    file = multipart_body(document, "/v1/models")["properties"]["file"]
    assert file["contentMediaType"] == "application/zip"
    response = api.post("/v1/models", files={"file": ("model.zip", b"safetensors, not a zip")})
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    assert api.post("/v1/models", files={"file": ("model.zip", empty.getvalue())}).status_code == 422
