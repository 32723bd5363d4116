"""Uploads in every feature format, on SQLite and PostgreSQL: canonical float32 .npy, labels, listing."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deepclust.app.core.npyfile import open_array

from ..conftest import artifacts, blobs, npy_bytes, npz_bytes, upload


def stored_array(backend, dataset_id: str, name: str = "x.npy") -> np.ndarray:
    return np.asarray(open_array(backend.data_dir / "artifacts" / "datasets" / dataset_id / name))


def test_npy_upload_is_stored_as_memory_mappable_float32(api, backend):
    X, _ = blobs(50, 6)
    r = upload(api, "blobs.npy", npy_bytes(X.astype(np.float64)), name="my blobs")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "my blobs" and body["format"] == "npy"
    assert (body["n_samples"], body["n_features"], body["sample_shape"]) == (50, 6, [6])
    assert body["has_labels"] is False and body["n_classes"] is None
    assert len(body["sha256"]) == 64 and body["created_at"].endswith("Z")
    mapped = open_array(backend.data_dir / "artifacts" / "datasets" / body["id"] / "x.npy")
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.float32
    np.testing.assert_array_equal(mapped, X)
    assert api.get(f"/v1/datasets/{body['id']}").json() == body


def test_npz_with_labels_and_uint8_images(api, backend):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 1, 4, 4), dtype=np.uint8)
    r = upload(api, "imgs.npz", npz_bytes(x=images, y=np.array(["cat", "dog"] * 10)))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sample_shape"] == [1, 4, 4] and body["n_features"] == 16
    assert body["has_labels"] is True and body["n_classes"] == 2
    np.testing.assert_array_equal(stored_array(backend, body["id"]), images.astype(np.float32))
    np.testing.assert_array_equal(stored_array(backend, body["id"], "y.npy"), [0, 1] * 10)


def test_csv_with_header_and_label_column(api, backend):
    X, y = blobs(30, 3)
    lines = ["a,b,class,c"] + [f"{r[0]},{r[1]},k{t},{r[2]}" for r, t in zip(X, y)]
    r = upload(api, "table.csv", "\n".join(lines).encode(), label_column="class")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["n_samples"], body["n_features"], body["n_classes"]) == (30, 3, 3)
    np.testing.assert_allclose(stored_array(backend, body["id"]), X, rtol=1e-6)
    np.testing.assert_array_equal(stored_array(backend, body["id"], "y.npy"), y)


def test_tsv_without_header_and_a_labels_file(api, backend):
    X, y = blobs(12, 4)
    tsv = "\n".join("\t".join(str(v) for v in row) for row in X).encode()
    labels = ("\n".join(str(v) for v in y) + "\n").encode()
    r = upload(api, "table.tsv", tsv, labels=("labels.txt", labels))
    assert r.status_code == 201, r.text
    assert r.json()["n_samples"] == 12 and r.json()["n_classes"] == 3
    np.testing.assert_allclose(stored_array(backend, r.json()["id"]), X, rtol=1e-6)


def test_parquet_with_label_column_and_npy_labels_file(api, backend):
    X, y = blobs(40, 3)
    table = pa.table({"f0": X[:, 0], "f1": X[:, 1].astype(np.float64), "f2": (X[:, 2] * 10).astype(np.int32),
                      "label": y})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=16)
    r = upload(api, "t.parquet", buffer.getvalue(), label_column="label")
    assert r.status_code == 201, r.text
    stored = stored_array(backend, r.json()["id"])
    np.testing.assert_allclose(stored[:, :2], X[:, :2], rtol=1e-6)
    np.testing.assert_array_equal(stored[:, 2], (X[:, 2] * 10).astype(np.int32))

    r = upload(api, "plain.npy", npy_bytes(X), labels=("y.npy", npy_bytes(y)))
    assert r.status_code == 201 and r.json()["n_classes"] == 3


def test_list_paginates_and_delete_removes_row_and_files(api, backend):
    X, _ = blobs(10, 2)
    ids = [upload(api, f"d{i}.npy", npy_bytes(X)).json()["id"] for i in range(3)]
    page = api.get("/v1/datasets", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = api.get("/v1/datasets", params={"limit": 2, "offset": 2}).json()
    assert {d["id"] for d in page["items"] + rest["items"]} == set(ids)

    assert api.delete(f"/v1/datasets/{ids[0]}").status_code == 204
    assert api.get(f"/v1/datasets/{ids[0]}").status_code == 404
    assert not any(ids[0] in path for path in artifacts(backend.data_dir))
    assert api.get("/v1/datasets").json()["total"] == 2
