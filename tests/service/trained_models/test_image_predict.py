"""Predict on images: one image file, an image archive or an .npy, made exactly like the training images."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepclust.worker.run import run_job

from ..conftest import artifacts, blobs, npy_bytes, upload
from ..imagefiles import class_archive, image_bytes, tar_bytes, zip_bytes
from ..http.test_bad_input import assert_error

N_PER_CLASS, K, SIZE = 8, 3, 16


def train_kmeans(api, filename: str, content: bytes, **fields) -> dict:
    dataset = upload(api, filename, content, **fields)
    assert dataset.status_code == 201, dataset.text
    job = api.post("/v1/jobs", json={"dataset_id": dataset.json()["id"], "method": "kmeans", "n_clusters": K,
                                     "params": {"n_init": 3}}).json()
    return job


@pytest.fixture(scope="module")
def trained(backend):
    members, pixels = class_archive(N_PER_CLASS, K, SIZE)
    with backend.client() as api:
        job = train_kmeans(api, "shapes.zip", zip_bytes(members))
        assert run_job(job["id"], backend.settings) == "succeeded"
        job = api.get(f"/v1/jobs/{job['id']}").json()
        labels = [item["label"] for item in api.get(f"/v1/jobs/{job['id']}/labels", params={"limit": 1000})
                  .json()["items"]]
        yield api, job["model_id"], pixels, np.asarray(labels), members


def predict_file(api, model_id: str, filename: str, content: bytes, **params):
    return api.post(f"/v1/models/{model_id}/predict", files={"file": (filename, content)}, params=params)


def test_the_model_remembers_its_input_shape(trained):
    api, model_id, _, labels, _ = trained
    assert api.get(f"/v1/models/{model_id}").json()["sample_shape"] == [1, SIZE, SIZE]
    assert len(set(labels.tolist())) == K


def test_one_png_gets_its_training_label(trained):
    api, model_id, pixels, labels, _ = trained
    for i in (0, 1, 2, 5):
        r = predict_file(api, model_id, f"new{i}.png", image_bytes(pixels[i]))
        assert r.status_code == 200, r.text
        assert r.json()["labels"] == [int(labels[i])]
        assert len(r.json()["probabilities"][0]) == K


def test_other_sizes_and_modes_are_made_like_the_training_images(trained):
    api, model_id, pixels, _, _ = trained
    colour = np.repeat(pixels[4][:, :, None], 3, axis=2)
    big = np.asarray(Image.fromarray(colour).resize((40, 30), Image.Resampling.NEAREST))
    r = predict_file(api, model_id, "big.jpg", image_bytes(big, "JPEG", quality=90), embeddings="true")
    assert r.status_code == 200, r.text
    # the same conversion and resize, done here with Pillow, sent as JSON rows of 0..255 pixels
    decoded = Image.open(io.BytesIO(image_bytes(big, "JPEG", quality=90)))
    expected = np.asarray(decoded.convert("L").resize((SIZE, SIZE), Image.Resampling.BILINEAR), np.float32)
    same = api.post(f"/v1/models/{model_id}/predict", json={"instances": [expected[None].tolist()]},
                    params={"embeddings": "true"}).json()
    assert r.json()["labels"] == same["labels"]
    np.testing.assert_allclose(r.json()["probabilities"], same["probabilities"], rtol=1e-5)
    np.testing.assert_allclose(r.json()["embeddings"], same["embeddings"], rtol=1e-5)


@pytest.mark.parametrize("container", ["zip", "tar.gz"])
def test_an_archive_gets_the_training_labels_in_archive_order(trained, container):
    api, model_id, _, labels, members = trained
    picked = [7, 3, 12, 0, 22]
    chosen = [(f"new/{members[i][0]}", members[i][1]) for i in picked]
    content = zip_bytes(chosen) if container == "zip" else tar_bytes(chosen, "gz")
    r = predict_file(api, model_id, f"batch.{container}", content)
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == labels[picked].tolist()


def test_a_single_image_archive_is_enough_for_predict(trained):
    api, model_id, pixels, labels, _ = trained
    r = predict_file(api, model_id, "one.zip", zip_bytes([("x.png", image_bytes(pixels[9]))]))
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == [int(labels[9])]


def test_an_npy_of_images_gets_the_training_labels(trained):
    api, model_id, pixels, labels, _ = trained
    for array in (pixels[:6, None], pixels[:6]):  # (N, C, H, W), or (N, H, W) grayscale
        r = predict_file(api, model_id, "x.npy", npy_bytes(array))
        assert r.status_code == 200, r.text
        assert r.json()["labels"] == labels[:6].tolist()


def test_image_predict_refusals_leave_nothing(trained, backend):
    api, model_id, pixels, _, _ = trained
    before = artifacts(backend.data_dir)
    assert_error(predict_file(api, model_id, "x.png", b"not a png"), 422, "unreadable_image")
    assert_error(predict_file(api, model_id, "x.zip", zip_bytes([("notes.txt", b"hi")])), 422, "no_images")
    assert_error(predict_file(api, model_id, "x.zip", zip_bytes([("../x.png", image_bytes(pixels[0]))])), 422,
                 "unsafe_path")
    assert artifacts(backend.data_dir) == before


def test_images_are_refused_by_models_not_trained_on_8_bit_images(backend):
    X, _ = blobs(30, 4, K)
    floats = np.random.default_rng(0).random((30, 1, 4, 4)).astype(np.float32)  # images as floats in [0, 1]
    png = image_bytes(np.zeros((4, 4), np.uint8))
    with backend.client() as api:
        for filename, content in [("x.npy", npy_bytes(X)), ("f.npy", npy_bytes(floats))]:
            job = train_kmeans(api, filename, content)
            assert run_job(job["id"], backend.settings) == "succeeded"
            model_id = api.get(f"/v1/jobs/{job['id']}").json()["model_id"]
            error = assert_error(predict_file(api, model_id, "x.png", png), 422, "image_input_unsupported")
            assert model_id in error["message"]
