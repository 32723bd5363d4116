"""Every refusal of API.md we can provoke: the right status, the error shape, nothing left behind."""
from __future__ import annotations

import io
import json
import logging
import socket
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ..conftest import TINY_DEC, artifacts, blobs, npy_bytes, npz_bytes, upload
from ..processes import ServerThread, wait_until


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


def npy_header_only(shape: tuple, descr: str = "<f4", data: bytes = b"\0" * 64) -> bytes:
    """A .npy whose header announces ``shape``, followed by a few bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def patched_npz(offset_in_central_dir: int, value: bytes, local_offset: int | None = None) -> bytes:
    """An .npz whose member 'x.npy' has a header field patched (flags, compression method)."""
    raw = bytearray(npz_bytes(x=np.ones((4, 2), dtype=np.float32)))
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + offset_in_central_dir:cd + offset_in_central_dir + len(value)] = value
    if local_offset is not None:
        raw[local_offset:local_offset + len(value)] = value
    return bytes(raw)


def wide_csv(columns: int, rows: int = 2) -> bytes:
    return (",".join(["1"] * columns) + "\n").encode() * rows


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
    "broken image archive": (("imgs.zip", b"PK\x03\x04"), {}, 422, "invalid_archive"),
    # Hostile headers and sizes: refused from what the file announces, before any work.
    "npy shape past int64": (("x.npy", npy_header_only((2**62 + 1, 4))), {}, 422, "invalid_file"),
    "npy size wraps int64": (("x.npy", npy_header_only((2**32, 2**32))), {}, 422, "invalid_file"),
    "npy dimension past int64": (("x.npy", npy_header_only((2**64, 2))), {}, 422, "invalid_file"),
    "npy negative dimensions": (("x.npy", npy_header_only((-4, -4))), {}, 422, "invalid_file"),
    "npz encrypted member": (("x.npz", patched_npz(8, b"\x01\x00", local_offset=6)), {}, 415, "unsupported_format"),
    "npz unknown compression": (("x.npz", patched_npz(10, b"\x63\x00", local_offset=8)), {}, 415,
                                "unsupported_format"),
    "csv with too many columns": (("x.csv", wide_csv(20_000)), {}, 413, "too_many_columns"),
    "tsv first line without end": (("x.tsv", b"1" * (2 << 20)), {}, 422, "invalid_file"),
    "labels too many": (("x.npy", npy_bytes(X)), {"labels": ("y.txt", b"1\n" * 100_000)}, 422,
                        "labels_length_mismatch"),
    "npy labels too many": (("x.npy", npy_bytes(X)), {"labels": ("y.npy", npy_bytes(np.zeros(21)))}, 422,
                            "labels_length_mismatch"),
    "label line too long": (("x.npy", npy_bytes(X)), {"labels": ("y.txt", b"1\n" * 19 + b"a" * 5000)}, 422,
                            "invalid_labels"),
    "too many classes": (("x.npy", npy_bytes(np.zeros((5000, 2)))),
                         {"labels": ("y.txt", "\n".join(map(str, range(5000))).encode())}, 422, "too_many_classes"),
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


def parquet_bytes(table: pa.Table, **options) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def test_every_format_is_held_to_the_expanded_size_and_column_caps(backend):
    """The canonical float32 size is capped for every format, not only .npz; so is a table's width."""
    app = backend.app(max_upload_bytes=1 << 20, max_expanded_bytes=100_000, max_columns=10)
    zeros = pa.table({f"c{i}": np.zeros(5000) for i in range(10)})  # 200 KB as float32
    parquet_bomb = parquet_bytes(zeros, compression="zstd")
    assert len(parquet_bomb) < 10_000  # it expands more than 20-fold
    with backend.client(app) as api:
        before = artifacts(backend.data_dir)
        for filename, content in [("bomb.parquet", parquet_bomb),
                                  ("pixels.npy", npy_bytes(np.zeros((200, 200), dtype=np.uint8))),
                                  ("zeros.csv", b"0,0,0,0,0\n" * 6000)]:
            error = assert_error(upload(api, filename, content), 413, "too_large")
            assert error["details"]["limit"] == 100_000
        for filename, content in [("wide.csv", wide_csv(11)), ("wide.tsv", wide_csv(11).replace(b",", b"\t")),
                                  ("wide.parquet", parquet_bytes(pa.table({f"c{i}": [1.0, 2.0] for i in range(11)})))]:
            error = assert_error(upload(api, filename, content), 413, "too_many_columns")
            assert error["details"]["limit"] == 10
        assert upload(api, "ok.csv", wide_csv(10, rows=3)).status_code == 201
        assert artifacts(backend.data_dir) != before


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


def test_a_job_body_that_is_not_sent_as_json_says_send_json(api):
    body = b'{"dataset_id": "ds_x", "method": "dec", "n_clusters": 3}'
    for headers in ({}, {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"}):
        error = assert_error(api.post("/v1/jobs", content=body, headers=headers), 415, "unsupported_media_type")
        assert "Content-Type: application/json" in error["message"] and "valid dictionary" not in error["message"]
    error = assert_error(api.post("/v1/jobs", content=b"[1, 2]", headers={"Content-Type": "application/json"}),
                         422, "invalid_request")
    assert "JSON object" in error["message"]


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


# -- hostile requests at the HTTP layer ---------------------------------------------------------------
# Each: (method, path, request kwargs, status, code). "{job}" is a queued job, "{model}" an unknown
# model: the body checks run before any route looks the id up.

INT64 = 2**63
DEEP = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
LATIN1 = '{"instances": [[1.0, 2.0]], "name": "caf\xe9"}'.encode("latin-1")
UTF16 = '{"instances": [[1.0, 2.0]]}'.encode("utf-16")
JSON = {"Content-Type": "application/json"}

HOSTILE_REQUESTS = {
    **{f"offset beyond int64 on {path}": ("GET", path, {"params": {"offset": INT64}}, 400, "malformed_request")
       for path in ("/v1/datasets", "/v1/jobs", "/v1/models", "/v1/jobs/{job}/labels")},
    **{f"limit beyond int64 on {path}": ("GET", path, {"params": {"limit": 2**64}}, 400, "malformed_request")
       for path in ("/v1/datasets", "/v1/jobs", "/v1/models", "/v1/jobs/{job}/labels")},
    "negative offset": ("GET", "/v1/datasets", {"params": {"offset": -1}}, 400, "malformed_request"),
    "predict nested 100,000 deep": ("POST", "/v1/models/{model}/predict", {"content": DEEP, "headers": JSON},
                                    400, "malformed_request"),
    "job nested 100,000 deep": ("POST", "/v1/jobs", {"content": DEEP, "headers": JSON}, 400, "malformed_request"),
    "predict latin-1 body": ("POST", "/v1/models/{model}/predict", {"content": LATIN1, "headers": JSON},
                             400, "malformed_request"),
    "predict utf-16 body": ("POST", "/v1/models/{model}/predict", {"content": UTF16, "headers": JSON},
                            400, "malformed_request"),
    "job latin-1 body": ("POST", "/v1/jobs", {"content": LATIN1, "headers": JSON}, 400, "malformed_request"),
    "job with a 1e9-wide layer": ("POST", "/v1/jobs", {"job": {"params": {"hidden_dims": [1_000_000_000]}}},
                                  422, "job_too_large"),
    "job with two 60,000-wide layers": ("POST", "/v1/jobs", {"job": {"params": {"hidden_dims": [60000, 60000]}}},
                                        422, "job_too_large"),
    "job with a zero-width layer": ("POST", "/v1/jobs", {"job": {"params": {"hidden_dims": [0, 8]}}},
                                    422, "invalid_params"),
    "job with no layers": ("POST", "/v1/jobs", {"job": {"params": {"hidden_dims": []}}}, 422, "invalid_params"),
    "10,000-character id": ("GET", "/v1/jobs/" + "j" * 10_000, {}, 404, "job_not_found"),
    "10,000-character path": ("GET", "/v1/" + "x" * 10_000, {}, 404, "not_found"),
}


@pytest.fixture
def queued_job(api) -> str:
    dataset = upload(api, "x.npy", npy_bytes(X)).json()["id"]
    return api.post("/v1/jobs", json={"dataset_id": dataset, "method": "dec", "n_clusters": 3,
                                      **TINY_DEC}).json()["id"]


@pytest.mark.parametrize("case", HOSTILE_REQUESTS, ids=list(HOSTILE_REQUESTS))
def test_hostile_request_is_refused_and_stores_nothing(api, backend, queued_job, case):
    method, path, kwargs, status, code = HOSTILE_REQUESTS[case]
    kwargs = dict(kwargs)
    if "job" in kwargs:  # a job body with these changes on a real dataset
        dataset = api.get(f"/v1/jobs/{queued_job}").json()["dataset_id"]
        kwargs["json"] = {"dataset_id": dataset, "method": "dec", "n_clusters": 3, **TINY_DEC}
        kwargs["json"]["params"] = {**TINY_DEC["params"], **kwargs.pop("job")["params"]}
    before = artifacts(backend.data_dir)
    response = api.request(method, path.format(job=queued_job, model="mdl_nope"), **kwargs)
    error = assert_error(response, status, code)
    assert len(error["message"]) < 400 and len(str(error["details"])) < 400  # input is not echoed whole
    assert artifacts(backend.data_dir) == before
    assert api.get("/v1/jobs").json()["total"] == 1  # the fixture's job, nothing more


def test_the_largest_int64_offset_is_an_empty_page(api, queued_job):
    for path in ("/v1/datasets", "/v1/jobs", "/v1/models"):
        page = api.get(path, params={"offset": INT64 - 1}).json()
        assert page["items"] == [] and page["total"] >= 0


# -- on a real socket: what is answered before the body is read, and a client that goes away ----------

def raw_exchange(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """Send ``head`` (and the start of a body) and read the answer without sending the rest."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head_part, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head_part.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += sock.recv(65536)
    return int(head_part.split()[1]), json.loads(rest[:length])


def post_head(path: str, length: int | None, key: str | None = None, ctype: str = "application/json") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Type: {ctype}"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_key_and_json_size_are_checked_before_the_body_is_read(backend):
    """A 50 MB body that never arrives: the answers come at once, so nothing waited for it."""
    app = backend.app(max_json_bytes=10_000)
    with backend.client(app) as api, ServerThread(app) as server:
        key = api.headers["Authorization"].split()[1]
        for path in ("/v1/jobs", "/v1/models/mdl_x/predict", "/v1/datasets"):
            status, body = raw_exchange(server.port, post_head(path, 50_000_000), b'{"instances": [')
            assert (status, body["error"]["code"]) == (401, "unauthorized")
        status, body = raw_exchange(server.port, post_head("/v1/jobs", 50_000_000, key), b"{")
        assert (status, body["error"]["code"]) == (413, "too_large")
        # Without a Content-Length the cap applies while the chunks arrive.
        chunk = b'{"instances": [' + b"1.0, " * 4000
        status, body = raw_exchange(server.port, post_head("/v1/models/mdl_x/predict", None, key),
                                    f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        assert (status, body["error"]["code"]) == (413, "too_large")
        assert_error(api.post("/v1/jobs", json={"name": "x" * 20_000}), 413, "too_large")


def test_client_disconnecting_mid_upload_is_no_error(backend, caplog):
    with backend.client() as api, ServerThread(backend.shared_app) as server:
        key = api.headers["Authorization"].split()[1]
        before = artifacts(backend.data_dir)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(post_head("/v1/datasets", 1_000_000, key, "multipart/form-data; boundary=b")
                         + b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.npy"\r\n\r\n'
                         + npy_bytes(np.zeros((1000, 10)))[:20_000])
            wait_until(lambda: any(p.startswith("tmp/") for p in artifacts(backend.data_dir)), 30,
                       "the upload to reach its staging file")
        wait_until(lambda: artifacts(backend.data_dir) == before, 30, "the staging file to go")
        assert api.get("/v1/datasets").json()["total"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_a_deeply_nested_body_is_refused_before_it_is_parsed(api, content_type):
    """Python's JSON parser recurses once per level: the nesting is counted first, also for a body
    without a Content-Type (which FastAPI parses as JSON all the same)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    headers = {"Content-Type": content_type} if content_type else {}
    for path in ("/v1/jobs", "/v1/sweeps", "/v1/models/mdl_x/predict"):
        request = api.build_request("POST", path, content=deep, headers=headers)
        if content_type is None:
            request.headers.pop("Content-Type", None)
        error = assert_error(api.send(request), 400, "malformed_request")
        assert error["details"]["depth"] == 100_000
