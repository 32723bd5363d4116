"""Every refusal of API.md we can provoke: the right status, the error shape, nothing left behind."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from .conftest import artifacts, blobs, npy_bytes, npz_bytes, upload


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert len(body["error"]["message"]) > 10
    return body["error"]


def object_npy() -> bytes:
    """A .npy whose header announces Python objects (loading it would unpickle)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (2,)})
    return buffer.getvalue() + b"\x80\x04N." * 2


def zip_bomb() -> bytes:
    """An .npz whose x expands 1000-fold: 4 MB of zeros in a few KB."""
    return npz_bytes(x=np.zeros((1000, 1000), dtype=np.float32))


X, Y = blobs(20, 3)
BAD_UPLOADS = {
    "empty file": (("x.npy", b""), {}, 422, "empty_data"),
    "one-dimensional": (("x.npy", npy_bytes(np.arange(5.0))), {}, 422, "one_dimensional"),
    "no samples": (("x.npy", npy_bytes(np.zeros((0, 3)))), {}, 422, "empty_data"),
    "one sample": (("x.npy", npy_bytes(np.zeros((1, 3)))), {}, 422, "too_few_samples"),
    "string array": (("x.npy", npy_bytes(np.array([["a", "b"], ["c", "d"]]))), {}, 422, "non_numeric"),
    "object npy": (("x.npy", object_npy()), {}, 422, "pickled_data"),
    "truncated npy": (("x.npy", npy_bytes(X)[:-7]), {}, 422, "truncated_file"),
    "npy NaN": (("x.npy", npy_bytes(np.where(np.eye(3, 3) > 0, np.nan, 1.0))), {}, 422, "non_finite"),
    "npy inf": (("x.npy", npy_bytes(np.full((3, 2), np.inf))), {}, 422, "non_finite"),
    "float32 overflow": (("x.npy", npy_bytes(np.full((3, 2), 1e300))), {}, 422, "non_finite"),
    "ragged csv": (("x.csv", b"1,2,3\n4,5\n6,7,8\n"), {}, 422, "ragged_rows"),
    "non-numeric csv": (("x.csv", b"1,2\n3,abc\n"), {}, 422, "non_numeric"),
    "empty csv cell": (("x.csv", b"1,2\n3,\n5,6\n"), {}, 422, "non_finite"),
    "csv nan": (("x.csv", b"1,2\nnan,4\n"), {}, 422, "non_finite"),
    "header only csv": (("x.csv", b"a,b\n"), {}, 422, "empty_data"),
    "binary csv": (("x.csv", b"\xff\xfe\x00\x01garbage"), {}, 422, "invalid_file"),
    "unknown label column": (("x.csv", b"a,b\n1,2\n3,4\n"), {"label_column": "zzz"}, 422, "unknown_label_column"),
    "label column on npy": (("x.npy", npy_bytes(X)), {"label_column": "0"}, 422, "label_column_unsupported"),
    "truncated npz": (("x.npz", npz_bytes(x=X)[:-30]), {}, 422, "invalid_file"),
    "npz without x": (("x.npz", npz_bytes(features=X)), {}, 422, "missing_array"),
    "npz object y": (("x.npz", npz_bytes(x=X)), {"labels": ("y.npy", object_npy())}, 422, "pickled_data"),
    "labels too few": (("x.npy", npy_bytes(X)), {"labels": ("y.txt", b"1\n2\n")}, 422, "labels_length_mismatch"),
    "labels twice": (("x.npz", npz_bytes(x=X, y=Y)), {"labels": ("y.txt", b"1\n" * 20)}, 422, "labels_given_twice"),
    "labels with a gap": (("x.npy", npy_bytes(X)), {"labels": ("y.txt", b"1\n\n2\n")}, 422, "invalid_labels"),
    "corrupt parquet": (("x.parquet", b"PAR1 this is not parquet PAR1"), {}, 422, "invalid_file"),
    "image archive": (("imgs.zip", b"PK\x03\x04"), {}, 415, "unsupported_format"),
    "unknown format": (("x.bin", b"\x00\x01\x02\x03 not data"), {}, 415, "unsupported_format"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_bad_upload_is_refused_and_leaves_nothing(api, backend, case):
    (filename, content), fields, status, code = BAD_UPLOADS[case]
    before = artifacts(backend.data_dir)
    assert_error(upload(api, filename, content, **fields), status, code)
    assert artifacts(backend.data_dir) == before
    assert api.get("/v1/datasets").json()["total"] == 0


def test_size_limits_give_413_and_leave_nothing(backend):
    app = backend.app(max_upload_bytes=10_000, max_expanded_bytes=100_000)
    with backend.client(app) as api:
        before = artifacts(backend.data_dir)
        assert_error(upload(api, "big.npy", npy_bytes(np.zeros((100, 100)))), 413, "too_large")
        bomb = zip_bomb()
        assert len(bomb) < 10_000
        assert_error(upload(api, "bomb.npz", bomb), 413, "too_large")
        assert artifacts(backend.data_dir) == before


def test_zip_member_lying_about_its_size_is_stopped(backend):
    """The declared size of a member is a claim; the bytes actually inflated are what is counted."""
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", npy_bytes(np.zeros((500, 100), dtype=np.float32)))
    raw = bytearray(zipped.getvalue())
    # Patch the central directory's uncompressed size of the member down to 1 KB.
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24:cd + 28] = (1024).to_bytes(4, "little")
    app = backend.app(max_expanded_bytes=100_000)
    with backend.client(app) as api:
        before = artifacts(backend.data_dir)
        response = upload(api, "liar.npz", bytes(raw))
        assert response.status_code in (413, 422), response.text
        assert artifacts(backend.data_dir) == before


def test_malformed_requests(api):
    assert_error(api.post("/v1/datasets", data={"name": "no file"}, files={"other": ("x", b"1")}),
                 400, "malformed_request")
    assert_error(api.post("/v1/datasets", files={"labels": ("y.txt", b"1\n2\n")}), 400, "missing_file")
    assert_error(api.post("/v1/datasets", json={"file": "x"}), 415, "unsupported_media_type")
    broken = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.npy\"\r\n\r\nabc"
    assert_error(api.post("/v1/datasets", content=broken,
                          headers={"Content-Type": "multipart/form-data; boundary=XyZ"}), 400, "malformed_request")
    assert_error(api.get("/v1/datasets", params={"limit": 0}), 400, "malformed_request")
    assert_error(api.get("/v1/jobs", params={"status": "sleeping"}), 400, "malformed_request")
    assert_error(api.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}),
                 400, "malformed_request")
    assert_error(api.get("/v1/nowhere"), 404, "not_found")


def test_unknown_ids_answer_404(api):
    assert_error(api.get("/v1/datasets/ds_nope"), 404, "dataset_not_found")
    assert_error(api.delete("/v1/datasets/ds_nope"), 404, "dataset_not_found")
    assert_error(api.get("/v1/jobs/job_nope"), 404, "job_not_found")
    for suffix in ("history", "labels", "centroids", "metrics"):
        assert_error(api.get(f"/v1/jobs/job_nope/{suffix}"), 404, "job_not_found")
    assert_error(api.post("/v1/jobs/job_nope/cancel"), 404, "job_not_found")
    assert_error(api.get("/v1/models/mdl_nope"), 404, "model_not_found")
    assert_error(api.post("/v1/models/mdl_nope/predict", json={"instances": [[1.0]]}), 404, "model_not_found")
    assert_error(api.post("/v1/jobs", json={"dataset_id": "ds_nope", "method": "dec", "n_clusters": 2}),
                 404, "dataset_not_found")


def test_auth_keys_and_tenants(backend):
    with backend.client() as alice, backend.client() as bob:
        dataset = upload(alice, "x.npy", npy_bytes(X)).json()["id"]
        assert_error(bob.get(f"/v1/datasets/{dataset}"), 404, "dataset_not_found")
        assert bob.get("/v1/datasets").json()["total"] == 0
        anonymous = {"Authorization": ""}
        assert_error(alice.get("/v1/datasets", headers=anonymous), 401, "unauthorized")
        assert_error(alice.get("/v1/datasets", headers={"Authorization": "Bearer dck_wrong"}), 401, "unauthorized")
        assert_error(alice.post("/v1/datasets", headers=anonymous, files={"file": ("x.npy", npy_bytes(X))}),
                     401, "unauthorized")
        assert alice.get("/healthz", headers=anonymous).status_code == 200
